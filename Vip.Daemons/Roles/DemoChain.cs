using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Vip.Agent;
using Vip.Client;
using Vip.Dispatch.Tier1;
using Vip.Dispatch.Tier2;
using Vip.Forwarding;
using Vip.Protocol;
using Vip.Selection;
using Vip.Tickets;

namespace Vip.Daemons.Roles;

/// <summary>An app server of the demo chain: its id, capacity and attributes.</summary>
internal sealed record DemoServerSpec(string Id, uint Capacity, IReadOnlyDictionary<string, string> Attributes);

/// <summary>A client of the demo chain: its id, the loopback address it sends from, and its stored attributes (none: unknown).</summary>
internal sealed record DemoClientSpec(string Id, IPAddress Address, IReadOnlyDictionary<string, string>? Attributes);

/// <summary>
/// The whole system in one process on loopback: a VIP box (PROXY v2 and PING health checks towards tier-1), two
/// tier-1 daemons, two tier-2 daemons with LiteDB files in a temporary folder (deleted on dispose), app servers
/// running the sample app, and client records written through the admin link. Used by <c>vipd demo</c> and the
/// end-to-end tests.
/// </summary>
internal sealed class DemoChain : IAsyncDisposable
{
    public const string AdminToken = "demo-admin-token";

    /// <summary>Daemons listen on 127.0.0.1; clients send from other 127.0.0.x addresses, so "whose address" is visible.</summary>
    public static readonly IPAddress DaemonAddress = IPAddress.Loopback;

    public static IReadOnlyList<DemoServerSpec> DefaultServers { get; } =
    [
        Server("eu-small", 48, ("region", "eu"), ("cpu", "4"), ("gpu", "no"), ("pool", "std")),
        Server("eu-large", 48, ("region", "eu"), ("cpu", "16"), ("gpu", "yes"), ("pool", "std")),
        Server("us-small", 48, ("region", "us"), ("cpu", "4"), ("gpu", "no"), ("pool", "std")),
        Server("us-large", 48, ("region", "us"), ("cpu", "32"), ("gpu", "yes"), ("pool", "std")),
        Server("gold-eu", 32, ("region", "eu"), ("cpu", "8"), ("gpu", "yes"), ("pool", "gold")),
    ];

    public static IReadOnlyList<DemoClientSpec> DefaultClients { get; } =
    [
        new("alice", IPAddress.Parse("127.0.0.101"), Attrs(("pool", "gold"), ("region", "eu"))),
        new("bob", IPAddress.Parse("127.0.0.102"), Attrs(("pool", "std"), ("region", "us"))),
        new("carol", IPAddress.Parse("127.0.0.103"), Attrs(("pool", "std"), ("region", "eu"))),
        new("dave", IPAddress.Parse("127.0.0.104"), null),
    ];

    private readonly List<IAsyncDisposable> _owned = [];

    private DemoChain(string directory) => Directory = directory;

    public string Directory { get; }

    public VipForwarder Vip { get; private set; } = null!;

    public IReadOnlyList<Tier1Server> Tier1 { get; private set; } = [];

    public IReadOnlyList<Tier2Server> Tier2 { get; private set; } = [];

    public IReadOnlyList<(DemoServerSpec Spec, AppServerAgent Agent, SampleApp App)> Servers { get; private set; } = [];

    public IReadOnlyList<DemoClientSpec> Clients { get; private set; } = [];

    public IPEndPoint VipEndPoint => Vip.TcpEndPoints[0];

    public IPEndPoint VipUdpEndPoint => Vip.UdpEndPoint!;

    public static DemoServerSpec Server(string id, uint capacity, params (string Key, string Value)[] attrs) => new(id, capacity, Attrs(attrs));

    public static IReadOnlyDictionary<string, string> Attrs(params (string Key, string Value)[] attrs) => attrs.ToDictionary(a => a.Key, a => a.Value, StringComparer.Ordinal);

    /// <summary>Starts everything and waits until a task from every client can be assigned (bounded by <paramref name="readyTimeout"/>).</summary>
    public static async Task<DemoChain> StartAsync(IReadOnlyList<DemoServerSpec>? servers = null, IReadOnlyList<DemoClientSpec>? clients = null,
        ILoggerFactory? loggers = null, TimeSpan? heartbeatInterval = null, TimeSpan? readyTimeout = null, CancellationToken cancellationToken = default)
    {
        loggers ??= NullLoggerFactory.Instance;
        servers ??= DefaultServers;
        clients ??= DefaultClients;
        var dir = Path.Combine(Path.GetTempPath(), "vipd-demo-" + Guid.NewGuid().ToString("N")[..10]);
        System.IO.Directory.CreateDirectory(dir);
        var chain = new DemoChain(dir) { Clients = clients };
        try
        {
            await chain.StartCoreAsync(servers, loggers, heartbeatInterval ?? TimeSpan.FromMilliseconds(250), readyTimeout ?? TimeSpan.FromSeconds(20), cancellationToken).ConfigureAwait(false);
            return chain;
        }
        catch
        {
            await chain.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task StartCoreAsync(IReadOnlyList<DemoServerSpec> servers, ILoggerFactory loggers, TimeSpan heartbeat, TimeSpan readyTimeout, CancellationToken cancellationToken)
    {
        var keys = TicketKeyRing.CreateNew();
        var tier2 = new List<Tier2Server>();
        for (var i = 0; i < 2; i++)
        {
            var o = new Tier2Options
            {
                Id = $"tier2-{i + 1}",
                ListenEndPoint = new IPEndPoint(DaemonAddress, 0),
                ControlEndPoint = new IPEndPoint(DaemonAddress, 0),
                DatabasePath = Path.Combine(Directory, $"tier2-{i + 1}.db"),
                AdminToken = AdminToken,

                // No start-up warm-up: this chain waits until every server it started is linked to both tier-2s.
                RegistrationGrace = TimeSpan.Zero,
            };
            o.Selection.BindingKeys = ["pool"];
            o.Selection.ClientPreferences = new Dictionary<string, int>(StringComparer.Ordinal) { ["region"] = 10 };
            o.Selection.DefaultClientAttributes = new Dictionary<string, string>(StringComparer.Ordinal) { ["pool"] = "std" };
            o.Selection.HeartbeatInterval = heartbeat;
            o.Selection.MissedHeartbeats = 3;
            o.Selection.PublishDelay = TimeSpan.Zero;
            var server = new Tier2Server(o, keys, loggers);
            _owned.Add(server);
            await server.StartAsync(cancellationToken).ConfigureAwait(false);
            tier2.Add(server);
        }

        Tier2 = tier2;
        var tier1 = new List<Tier1Server>();
        for (var i = 0; i < 2; i++)
        {
            var o = new Tier1Options
            {
                Id = $"tier1-{i + 1}",
                Listen = new IPEndPoint(DaemonAddress, 0),
                UdpListen = new IPEndPoint(DaemonAddress, 0),
                PingInterval = TimeSpan.FromMilliseconds(200),
                DrainTimeout = TimeSpan.FromMilliseconds(500),
            };
            foreach (var t in tier2)
            {
                o.Tier2.Add(t.ListenEndPoint);
            }

            o.TrustedProxies.Add(new IPNetwork(DaemonAddress, 32)); // the VIP box connects from the daemons' address
            var server = new Tier1Server(o, loggers);
            _owned.Add(server);
            await server.StartAsync(cancellationToken).ConfigureAwait(false);
            tier1.Add(server);
        }

        Tier1 = tier1;
        var vo = new ForwarderOptions { Listen = $"{DaemonAddress}:0", UdpListen = $"{DaemonAddress}:0", ProxyProtocol = true, DrainTimeout = TimeSpan.FromMilliseconds(500) };
        vo.HealthCheck.Mode = HealthCheckMode.Ping;
        vo.HealthCheck.Interval = TimeSpan.FromMilliseconds(200);
        vo.HealthCheck.Rise = 1;
        vo.HealthCheck.Fall = 2;
        foreach (var t in tier1)
        {
            vo.Backends.Add(new BackendOptions { Address = t.LocalEndPoint.ToString() });
            vo.UdpBackends.Add(new BackendOptions { Address = t.UdpLocalEndPoint!.ToString() });
        }

        Vip = new VipForwarder(vo, loggers);
        _owned.Add(Vip);
        await Vip.StartAsync(cancellationToken).ConfigureAwait(false);

        var apps = new List<(DemoServerSpec, AppServerAgent, SampleApp)>();
        foreach (var spec in servers)
        {
            var o = new AppServerAgentOptions { ServerId = spec.Id, ListenEndPoint = new IPEndPoint(DaemonAddress, 0), Capacity = spec.Capacity };
            foreach (var t in tier2)
            {
                o.ControlEndPoints.Add(t.ControlEndPoint);
            }

            foreach (var (k, v) in spec.Attributes)
            {
                o.Attributes[k] = v;
            }

            var app = new SampleApp(loggerFactory: loggers);
            var agent = SampleApp.CreateAgent(app, o, keys, loggers);
            _owned.Add(agent);
            await agent.StartAsync(cancellationToken).ConfigureAwait(false);
            apps.Add((spec, agent, app));
        }

        Servers = apps;
        foreach (var t in tier2)
        {
            await using var admin = await Tier2AdminClient.ConnectAsync(t.ControlEndPoint, AdminToken, TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
            foreach (var c in Clients.Where(c => c.Attributes is not null))
            {
                var result = await admin.SendAsync(Tier2AdminCommands.ClientsSet, [c.Id, .. c.Attributes!.Select(a => $"{a.Key}={a.Value}")], TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
                if (result.Status != 0)
                {
                    throw new InvalidOperationException($"clients set {c.Id} on {t.Options.Id} failed: {result.Json}");
                }
            }
        }

        await WaitReadyAsync(readyTimeout, cancellationToken).ConfigureAwait(false);
    }

    private async Task WaitReadyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var linksUp = Tier1.All(t => t.GetTier2Status().All(s => s.Available)) && Vip.GetBackends().All(b => b.IsUp)
                && Tier2.All(t => t.ConnectedServers == Servers.Count);
            if (linksUp && await EveryServerIsSelectableAsync(cancellationToken).ConfigureAwait(false))
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the demo chain was not ready within {timeout.TotalSeconds:0} s");
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }

    // Every app server has been heard from (is Up) at every tier-2.
    private Task<bool> EveryServerIsSelectableAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Tier2.All(t => Servers.All(s => t.Selection.Servers.TryGetServer(s.Spec.Id, out var e) && e.State == global::Vip.Selection.ServerState.Up)));
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            try
            {
                await _owned[i].DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
            {
            }
        }

        _owned.Clear();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
