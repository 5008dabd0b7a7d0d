using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Vip.Daemons.Hosting;
using Vip.Dispatch.Tier1;
using Vip.Protocol;

namespace Vip.Daemons.Roles;

/// <summary><c>vipd tier1</c>: the tier-1 daemon (TASK in over TCP/UDP, FORWARD to tier-2, answer back).</summary>
internal sealed class Tier1Role : IRole
{
    private static readonly Dictionary<string, string> Switches = new(StringComparer.Ordinal)
    {
        ["--listen"] = "Tier1:Listen",
        ["--udp-listen"] = "Tier1:UdpListen",
        ["--tier2"] = "Tier1:Tier2",
        ["--id"] = "Tier1:Id",
        ["--trusted-proxies"] = "Tier1:TrustedProxies",
        ["--tier2-choice"] = "Tier1:Tier2Choice",
    };

    public string Name => "tier1";

    public string Summary => "tier-1 daemon: takes tasks from the VIP box, forwards them to tier-2";

    public string Usage => """
        usage: vipd tier1 --listen HOST:PORT --tier2 HOST:PORT,HOST:PORT [--udp-listen HOST:PORT] [--id ID]
                          [--trusted-proxies CIDR,...] [--tier2-choice hash|round-robin] [--config PATH] [--metrics HOST:PORT]

          --listen            TCP address for TASK frames (Tier1:Listen)
          --udp-listen        UDP address for single-datagram TASKs (Tier1:UdpListen; default: none)
          --tier2             the tier-2 daemons' task addresses (Tier1:Tier2)
          --id                this daemon's id in FORWARD frames (Tier1:Id; default tier1-HOSTNAME)
          --trusted-proxies   the VIP boxes: connections and datagrams from these networks must start with a
                              PROXY v2 header, which gives the client's address (Tier1:TrustedProxies)
          --tier2-choice      hash (same client → same tier-2; default) or round-robin (Tier1:Tier2Choice)

        more settings (configuration only, e.g. --Tier1:RequestTimeout 1s or VIPD_Tier1__RequestTimeout=1s):
          Tier1:RequestTimeout (2s), Tier1:MaxInFlightPerConnection (1024), Tier1:MaxInFlightPerTier2 (16384),
          Tier1:MaxInFlight (65536), Tier1:MaxConnections (10000), Tier1:PingInterval (1s), Tier1:PingTimeout (3s),
          Tier1:ProxyHeaderTimeout (5s), Tier1:ConnectTimeout (2s), Tier1:FailureThreshold (3),
          Tier1:DrainTimeout (5s), Tier1:UnavailableRetryAfterMs (500), Protocol:MaxPayload (65536),
          Tier1:InlineCompletions (true: socket completions run on the socket-engine threads)
        """;

    public async Task<int> RunAsync(string[] args)
    {
        var builder = RoleHost.CreateBuilder(Name, args, Switches);
        RoleHost.UseInlineCompletions(builder.Configuration.GetSection("Tier1"));
        var options = Parse(builder.Configuration);
        builder.Services.AddSingleton(options);
        builder.Services.AddHostedService<Tier1Service>();
        return await RoleHost.RunAsync(builder.Build()).ConfigureAwait(false);
    }

    /// <summary>Builds <see cref="Tier1Options"/> from configuration; every bad value is one line naming its key.</summary>
    internal static Tier1Options Parse(IConfiguration c)
    {
        var options = new Tier1Options
        {
            Listen = ConfigParse.Endpoint(c["Tier1:Listen"], "Tier1:Listen"),
            Id = c["Tier1:Id"] is { Length: > 0 } id ? id.Trim() : "tier1-" + Environment.MachineName,
        };
        if (c["Tier1:UdpListen"] is { Length: > 0 } udp)
        {
            options.UdpListen = ConfigParse.Endpoint(udp, "Tier1:UdpListen");
        }

        foreach (var ep in ConfigParse.Endpoints(c, "Tier1:Tier2"))
        {
            options.Tier2.Add(ep);
        }

        foreach (var cidr in ListOf(c, "Tier1:TrustedProxies"))
        {
            if (!IPNetwork.TryParse(cidr, out var network) && !(IPAddress.TryParse(cidr, out var single) && IPNetwork.TryParse($"{single}/{(single.AddressFamily == AddressFamily.InterNetworkV6 ? 128 : 32)}", out network)))
            {
                throw new StartupException($"Tier1:TrustedProxies: '{cidr}' is not a network (expected CIDR such as 10.0.0.0/24 or an address)");
            }

            options.TrustedProxies.Add(network);
        }

        options.Tier2Choice = c["Tier1:Tier2Choice"]?.Trim().ToLowerInvariant() switch
        {
            null or "" or "hash" => Tier2Choice.Hash,
            "round-robin" or "roundrobin" => Tier2Choice.RoundRobin,
            var other => throw new StartupException($"Tier1:Tier2Choice: '{other}' is not hash or round-robin"),
        };

        static TimeSpan? D(IConfiguration c, string key) => c[key] is { Length: > 0 } v ? ConfigParse.Duration(v, key, TimeSpan.FromMilliseconds(1), TimeSpan.FromHours(1)) : null;
        static int? I(IConfiguration c, string key, int min, int max) => c[key] is { Length: > 0 } v ? ConfigParse.Int32(v, key, min, max) : null;
        options.RequestTimeout = D(c, "Tier1:RequestTimeout") ?? options.RequestTimeout;
        options.PingInterval = D(c, "Tier1:PingInterval") ?? options.PingInterval;
        options.PingTimeout = D(c, "Tier1:PingTimeout") ?? options.PingTimeout;
        options.ProxyHeaderTimeout = D(c, "Tier1:ProxyHeaderTimeout") ?? options.ProxyHeaderTimeout;
        options.ConnectTimeout = D(c, "Tier1:ConnectTimeout") ?? options.ConnectTimeout;
        options.DrainTimeout = D(c, "Tier1:DrainTimeout") ?? options.DrainTimeout;
        options.MaxInFlightPerConnection = I(c, "Tier1:MaxInFlightPerConnection", 1, 1 << 20) ?? options.MaxInFlightPerConnection;
        options.MaxInFlightPerTier2 = I(c, "Tier1:MaxInFlightPerTier2", 1, 1 << 24) ?? options.MaxInFlightPerTier2;
        options.MaxInFlight = I(c, "Tier1:MaxInFlight", 1, 1 << 24) ?? options.MaxInFlight;
        options.MaxConnections = I(c, "Tier1:MaxConnections", 1, 1 << 24) ?? options.MaxConnections;
        options.FailureThreshold = I(c, "Tier1:FailureThreshold", 1, 1000) ?? options.FailureThreshold;
        options.UnavailableRetryAfterMs = (uint)(I(c, "Tier1:UnavailableRetryAfterMs", 0, 600_000) ?? (int)options.UnavailableRetryAfterMs);
        if (I(c, "Protocol:MaxPayload", 256, ProtocolLimits.MaxPayloadCeiling) is { } maxPayload)
        {
            options.Limits = new ProtocolLimits { MaxPayload = maxPayload };
        }

        try
        {
            options.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new StartupException(ex.Message.Split(" (Parameter", 2)[0], ex);
        }

        return options;
    }

    private static IEnumerable<string> ListOf(IConfiguration c, string key)
    {
        var values = new List<string?> { c[key] };
        values.AddRange(c.GetSection(key).GetChildren().Select(ch => ch.Value));
        return values.Where(v => !string.IsNullOrWhiteSpace(v)).SelectMany(v => v!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }
}

/// <summary>Hosts the <see cref="Tier1Server"/>: binds in StartAsync (READY=1 means listening), drains in StopAsync.</summary>
internal sealed class Tier1Service(Tier1Options options, ILoggerFactory loggers, IHealthSignal health) : IHostedService, IAsyncDisposable
{
    private readonly Tier1Server _server = new(options, loggers);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _server.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            var udpFailed = options.UdpListen is not null && ex.SocketErrorCode == SocketError.AddressAlreadyInUse && IsTcpFree(options.Listen!);
            throw udpFailed ? ConfigParse.CannotListen("Tier1:UdpListen", options.UdpListen!, ex) : ConfigParse.CannotListen("Tier1:Listen", options.Listen!, ex);
        }

        health.Report("tier1.listener", healthy: true);
    }

    public Task StopAsync(CancellationToken cancellationToken) => _server.StopAsync(cancellationToken);

    public ValueTask DisposeAsync() => _server.DisposeAsync();

    private static bool IsTcpFree(IPEndPoint endPoint)
    {
        if (endPoint.Port == 0)
        {
            return true;
        }

        using var probe = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            probe.Bind(endPoint);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
