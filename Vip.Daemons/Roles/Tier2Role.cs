using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Vip.Daemons.Hosting;
using Vip.Dispatch.Tier2;
using Vip.Protocol;
using Vip.Selection;
using Vip.Store;
using Vip.Tickets;

namespace Vip.Daemons.Roles;

/// <summary><c>vipd tier2</c>: the tier-2 daemon (selection, store, tickets, control links).</summary>
internal sealed class Tier2Role : IRole
{
    private static readonly Dictionary<string, string> Switches = new(StringComparer.Ordinal)
    {
        ["--listen"] = "Tier2:Listen",
        ["--control"] = "Tier2:Control",
        ["--db"] = "Tier2:Db",
        ["--ticket-key-file"] = "Tier2:TicketKeyFile",
        ["--id"] = "Tier2:Id",
        ["--admin-token-file"] = "Tier2:AdminTokenFile",
        ["--policy"] = "Selection:Policy",
        ["--unknown-clients"] = "Selection:UnknownClients",
        ["--binding"] = "Selection:BindingKeys",
    };

    private static readonly Dictionary<string, SelectionPolicy> PolicyNames = new(StringComparer.OrdinalIgnoreCase)
    {
        ["least-load"] = SelectionPolicy.LeastLoad,
        ["p2c"] = SelectionPolicy.PowerOfTwoChoices,
        ["weighted"] = SelectionPolicy.WeightedRoundRobin,
        ["affinity"] = SelectionPolicy.ClientAffinity,
    };

    public string Name => "tier2";

    public string Summary => "tier-2 daemon: selects the app server for each task, sends EXPECT, answers REDIRECT";

    public string Usage => """
        usage: vipd tier2 --listen HOST:PORT --control HOST:PORT --db PATH --ticket-key-file PATH
                          [--id ID] [--policy least-load|p2c|weighted|affinity] [--admin-token-file PATH]
                          [--unknown-clients serve|reject] [--binding KEY ...]

          --listen HOST:PORT        where tier-1 daemons connect (FORWARD, PING)          Tier2:Listen
          --control HOST:PORT       where app servers register and vipd ctl connects      Tier2:Control
          --db PATH                 the LiteDB store (servers, clients, network rules)    Tier2:Db
          --ticket-key-file PATH    ticket keys, made by 'vipd keygen --out PATH'         Tier2:TicketKeyFile
          --id ID                   this daemon's name in logs and admin answers           Tier2:Id (default: host name)
          --policy NAME             ranking: least-load (default), p2c, weighted, affinity Selection:Policy
          --admin-token-file PATH   token vipd ctl must present; without it ADMIN is refused Tier2:AdminTokenFile
          --unknown-clients MODE    serve (default) or reject clients with no record      Selection:UnknownClients
          --binding KEY             an attribute client and server must agree on (repeat)  Selection:BindingKeys

        More keys (appsettings.json or VIPD_ environment variables, '__' between sections):
          Tier2:TicketLifetime (00:00:30), Tier2:MaxTier1Connections (1024), Tier2:MaxControlConnections (16384),
          Tier2:MaxControlBuffer (1048576), Tier2:ControlSendTimeout (00:00:05), Tier2:FirstFrameTimeout (00:00:10),
          Tier2:RegistrationGrace (the heartbeat expiry window; 0s turns the start-up warm-up off),
          Tier2:InlineCompletions (true: socket completions run on the socket-engine threads),
          Protocol:MaxPayload (65536), and the Selection section: HeartbeatInterval (00:00:01),
          MissedHeartbeats (3), MaxAlternatives (2), NoMatchRetryAfter, OverloadedRetryAfter, ClientPreferences,
          DefaultClientAttributes, PublishDelay, ... (docs/operations.md).
        """;

    public async Task<int> RunAsync(string[] args)
    {
        var builder = RoleHost.CreateBuilder(Name, args, Switches, ["--binding"]);
        RoleHost.UseInlineCompletions(builder.Configuration.GetSection("Tier2"));
        var options = BuildOptions(builder.Configuration);
        var keys = LoadKeys(options.TicketKeyFile!);
        builder.Services.AddSingleton(sp => new Tier2Server(options, keys, sp.GetRequiredService<ILoggerFactory>()));
        builder.Services.AddHostedService<Tier2Service>();
        using var host = builder.Build();
        return await RoleHost.RunAsync(host).ConfigureAwait(false);
    }

    internal static Tier2Options BuildOptions(IConfiguration config)
    {
        var options = new Tier2Options
        {
            Id = config["Tier2:Id"] is { Length: > 0 } id ? id : Dns.GetHostName(),
            ListenEndPoint = RoleConfig.RequireEndPoint(config, "Tier2:Listen", "--listen"),
            ControlEndPoint = RoleConfig.RequireEndPoint(config, "Tier2:Control", "--control"),
            DatabasePath = config["Tier2:Db"] ?? throw new StartupException("--db PATH is required (the LiteDB store file)"),
            TicketKeyFile = config["Tier2:TicketKeyFile"] ?? throw new StartupException("--ticket-key-file PATH is required (make one with 'vipd keygen --out PATH')"),
            TicketLifetime = RoleConfig.Get(config, "Tier2:TicketLifetime", TimeSpan.FromSeconds(30)),
            MaxTier1Connections = RoleConfig.Get(config, "Tier2:MaxTier1Connections", 1024),
            MaxControlConnections = RoleConfig.Get(config, "Tier2:MaxControlConnections", 16_384),
            MaxControlBuffer = RoleConfig.Get(config, "Tier2:MaxControlBuffer", 1024 * 1024),
            ControlSendTimeout = RoleConfig.Get(config, "Tier2:ControlSendTimeout", TimeSpan.FromSeconds(5)),
            FirstFrameTimeout = RoleConfig.Get(config, "Tier2:FirstFrameTimeout", TimeSpan.FromSeconds(10)),
            Limits = new ProtocolLimits { MaxPayload = RoleConfig.Get(config, "Protocol:MaxPayload", ProtocolLimits.DefaultMaxPayload) },
        };

        if (config["Tier2:RegistrationGrace"] is { Length: > 0 })
        {
            options.RegistrationGrace = RoleConfig.Get(config, "Tier2:RegistrationGrace", TimeSpan.Zero);
        }

        if (config["Tier2:AdminTokenFile"] is { Length: > 0 } tokenFile)
        {
            options.AdminToken = RoleConfig.ReadSecretFile(tokenFile, "admin token file");
        }

        options.Selection = BuildSelection(config);
        try
        {
            options.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new StartupException("invalid configuration: " + ex.Message, ex);
        }

        return options;
    }

    private static SelectionOptions BuildSelection(IConfiguration config)
    {
        var section = config.GetSection("Selection");
        var selection = new SelectionOptions();
        var policy = section["Policy"];
        var unknown = section["UnknownClients"];
        try
        {
            // The short names of the switches are not the enum's: take them out before binding the rest.
            var rest = new ConfigurationBuilder().AddInMemoryCollection(
                section.AsEnumerable(makePathsRelative: true)
                    .Where(p => p.Value is not null && !p.Key.Equals("Policy", StringComparison.OrdinalIgnoreCase) && !p.Key.Equals("UnknownClients", StringComparison.OrdinalIgnoreCase)))
                .Build();
            rest.Bind(selection);
        }
        catch (InvalidOperationException ex)
        {
            throw new StartupException("invalid Selection configuration: " + (ex.InnerException?.Message ?? ex.Message), ex);
        }

        if (policy is not null)
        {
            if (PolicyNames.TryGetValue(policy, out var p) || Enum.TryParse(policy, ignoreCase: true, out p))
            {
                selection.Policy = p;
            }
            else
            {
                throw new StartupException($"--policy '{policy}' is not one of least-load, p2c, weighted, affinity");
            }
        }

        if (unknown is not null)
        {
            selection.UnknownClients = unknown.ToLowerInvariant() switch
            {
                "serve" or "servewithdefaults" => UnknownClientMode.ServeWithDefaults,
                "reject" => UnknownClientMode.Reject,
                _ => throw new StartupException($"--unknown-clients '{unknown}' is not serve or reject"),
            };
        }

        return selection;
    }

    private static TicketKeyRing LoadKeys(string path)
    {
        try
        {
            return TicketKeyFile.Load(path);
        }
        catch (TicketKeyFileException ex)
        {
            throw new StartupException(ex.Message, ex);
        }
    }

    /// <summary>Starts and stops the <see cref="Tier2Server"/> with the host, turning start-up failures into one line.</summary>
    private sealed class Tier2Service(Tier2Server server) : IHostedService, IAsyncDisposable
    {
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            try
            {
                await server.StartAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (StoreOpenException ex)
            {
                throw new StartupException(ex.Message, ex);
            }
            catch (SocketException ex)
            {
                throw new StartupException($"cannot listen on {server.Options.ListenEndPoint} / {server.Options.ControlEndPoint}: {ex.Message}", ex);
            }
        }

        public Task StopAsync(CancellationToken cancellationToken) => server.StopAsync(cancellationToken);

        public ValueTask DisposeAsync() => server.DisposeAsync();
    }
}

/// <summary>Reading role configuration values with one-line errors that name the key and the switch.</summary>
internal static class RoleConfig
{
    public static IPEndPoint RequireEndPoint(IConfiguration config, string key, string @switch)
    {
        var text = config[key];
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new StartupException($"{@switch} HOST:PORT is required ({key})");
        }

        return ParseEndPoint(text, @switch);
    }

    /// <summary>An IP address and port (<c>127.0.0.1:7300</c>, <c>[::1]:7300</c>).</summary>
    public static IPEndPoint ParseEndPoint(string text, string what)
    {
        if (!IPEndPoint.TryParse(text.Trim(), out var endPoint) || !text.Contains(':', StringComparison.Ordinal))
        {
            throw new StartupException($"{what} '{text}' is not an address HOST:PORT (an IP address and a port)");
        }

        return endPoint;
    }

    /// <summary>An IP address and port, or a host name and port (resolved when connecting).</summary>
    public static EndPoint ParseRemote(string text, string what)
    {
        text = text.Trim();
        if (IPEndPoint.TryParse(text, out var ip) && ip.Port != 0)
        {
            return ip;
        }

        var colon = text.LastIndexOf(':');
        if (colon > 0 && int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and <= 65535)
        {
            return new DnsEndPoint(text[..colon], port);
        }

        throw new StartupException($"{what} '{text}' is not an address HOST:PORT");
    }

    public static T Get<T>(IConfiguration config, string key, T fallback)
    {
        var text = config[key];
        if (string.IsNullOrWhiteSpace(text))
        {
            return fallback;
        }

        try
        {
            return (T)System.ComponentModel.TypeDescriptor.GetConverter(typeof(T)).ConvertFromInvariantString(text)!;
        }
        catch (Exception ex) when (ex is FormatException or NotSupportedException or ArgumentException or OverflowException)
        {
            throw new StartupException($"{key} '{text}' is not a valid {typeof(T).Name}", ex);
        }
    }

    public static string ReadSecretFile(string path, string what)
    {
        try
        {
            var text = File.ReadAllText(path).Trim();
            if (text.Length == 0)
            {
                throw new StartupException($"the {what} '{path}' is empty");
            }

            return text;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StartupException($"cannot read the {what} '{path}': {ex.Message}", ex);
        }
    }
}
