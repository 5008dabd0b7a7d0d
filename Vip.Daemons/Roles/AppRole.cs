using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Vip.Agent;
using Vip.Daemons.Hosting;
using Vip.Protocol;
using Vip.Tickets;

namespace Vip.Daemons.Roles;

/// <summary><c>vipd app</c>: the sample app server — the agent plus real tasks (sha256, primes, sleep, echo).</summary>
internal sealed class AppRole : IRole
{
    private static readonly Dictionary<string, string> Switches = new(StringComparer.Ordinal)
    {
        ["--id"] = "App:Id",
        ["--listen"] = "App:Listen",
        ["--advertise"] = "App:Advertise",
        ["--control"] = "App:Control",
        ["--attr"] = "App:Attr",
        ["--capacity"] = "App:Capacity",
        ["--ticket-key-file"] = "App:TicketKeyFile",
        ["--strict"] = "App:RequireExpect",
        ["--no-client-check"] = "App:NoClientCheck",
    };

    public string Name => "app";

    public string Summary => "sample app server: registers with the tier-2 daemons and runs sha256/primes/sleep/echo tasks";

    public string Usage => """
        usage: vipd app --id ID --listen HOST:PORT --control HOST:PORT[,HOST:PORT...] --ticket-key-file PATH
                        [--attr k=v ...] [--capacity N] [--advertise HOST:PORT] [--strict] [--no-client-check]

          --id ID                    this app server's id                                   App:Id
          --listen HOST:PORT         where clients connect with their tickets               App:Listen
          --advertise HOST:PORT      the address to give clients, when --listen is 0.0.0.0  App:Advertise
          --control LIST             every tier-2 control address, comma-separated          App:Control
          --attr k=v                 a static attribute (repeat)                            App:Attr:0, App:Attr:1, ...
          --capacity N               tasks at once at full load (default 64)                App:Capacity
          --ticket-key-file PATH     the ticket keys shared with the tier-2 daemons         App:TicketKeyFile
          --strict                   accept a ticket only after its EXPECT notice arrived   App:RequireExpect
          --no-client-check          do not require the ticket's client address (NAT)       App:NoClientCheck

        More keys: App:ClaimTimeout (00:00:05), App:ClockSkew (00:00:02), App:ExpectWait (00:00:01),
        App:MaxConnections (1024), App:MaxPrimesN (20000000), App:MaxSleep (00:00:10),
        App:MaxTasksPerConnection (8), App:IdleTimeout (00:01:00), Protocol:MaxPayload (65536).

        Clients send TASK frames on the claimed connection and get one RESULT each (status 0 = ok,
        1 unknown kind, 2 bad argument, 3 cancelled, 4 internal): sha256 (hex of the body's hash), primes
        (primes <= n; n is the body or attribute n), sleep (milliseconds: body or attribute ms), echo.
        """;

    public async Task<int> RunAsync(string[] args)
    {
        var builder = RoleHost.CreateBuilder(Name, args, Switches, ["--attr"]);
        var (agentOptions, taskOptions) = BuildOptions(builder.Configuration);
        TicketKeyRing keys;
        try
        {
            keys = TicketKeyFile.Load(agentOptions.TicketKeyFile!);
        }
        catch (TicketKeyFileException ex)
        {
            throw new StartupException(ex.Message, ex);
        }

        builder.Services.AddSingleton(sp =>
        {
            var loggers = sp.GetRequiredService<ILoggerFactory>();
            var app = new SampleApp(taskOptions, agentOptions.Limits, loggers);
            return SampleApp.CreateAgent(app, agentOptions, keys, loggers);
        });
        builder.Services.AddHostedService<AgentService>();
        using var host = builder.Build();
        return await RoleHost.RunAsync(host).ConfigureAwait(false);
    }

    internal static (AppServerAgentOptions Agent, SampleTaskOptions Tasks) BuildOptions(IConfiguration config)
    {
        var options = new AppServerAgentOptions
        {
            ServerId = config["App:Id"] is { Length: > 0 } id ? id : throw new StartupException("--id ID is required (this app server's id)"),
            ListenEndPoint = RoleConfig.RequireEndPoint(config, "App:Listen", "--listen"),
            TicketKeyFile = config["App:TicketKeyFile"] ?? throw new StartupException("--ticket-key-file PATH is required (the same key file as the tier-2 daemons)"),
            Capacity = RoleConfig.Get(config, "App:Capacity", 64u),
            RequireExpect = RoleConfig.Get(config, "App:RequireExpect", false),
            VerifyClientAddress = !RoleConfig.Get(config, "App:NoClientCheck", false),
            ClaimTimeout = RoleConfig.Get(config, "App:ClaimTimeout", TimeSpan.FromSeconds(5)),
            ClockSkew = RoleConfig.Get(config, "App:ClockSkew", TimeSpan.FromSeconds(2)),
            ExpectWait = RoleConfig.Get(config, "App:ExpectWait", TimeSpan.FromSeconds(1)),
            MaxConnections = RoleConfig.Get(config, "App:MaxConnections", 1024),
            Limits = new ProtocolLimits { MaxPayload = RoleConfig.Get(config, "Protocol:MaxPayload", ProtocolLimits.DefaultMaxPayload) },
        };

        if (config["App:Advertise"] is { Length: > 0 } advertise)
        {
            options.AdvertisedEndPoint = RoleConfig.ParseEndPoint(advertise, "--advertise");
        }

        var control = config["App:Control"];
        if (string.IsNullOrWhiteSpace(control))
        {
            throw new StartupException("--control HOST:PORT[,HOST:PORT...] is required (the tier-2 control addresses)");
        }

        foreach (var part in control.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            options.ControlEndPoints.Add(RoleConfig.ParseRemote(part, "--control"));
        }

        foreach (var pair in config.GetSection("App:Attr").GetChildren().Select(c => c.Value).Concat(config.GetSection("App:Attributes").GetChildren().Select(c => c.Key + "=" + c.Value)))
        {
            var eq = pair?.IndexOf('=', StringComparison.Ordinal) ?? -1;
            if (pair is null || eq <= 0)
            {
                throw new StartupException($"--attr '{pair}' is not k=v");
            }

            options.Attributes[pair[..eq]] = pair[(eq + 1)..];
        }

        var tasks = new SampleTaskOptions
        {
            MaxPrimesN = RoleConfig.Get(config, "App:MaxPrimesN", 20_000_000L),
            MaxSleep = RoleConfig.Get(config, "App:MaxSleep", TimeSpan.FromSeconds(10)),
            MaxConcurrentTasksPerConnection = RoleConfig.Get(config, "App:MaxTasksPerConnection", 8),
            IdleTimeout = RoleConfig.Get(config, "App:IdleTimeout", TimeSpan.FromMinutes(1)),
        };

        try
        {
            options.Validate();
            tasks.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new StartupException("invalid configuration: " + ex.Message, ex);
        }

        return (options, tasks);
    }

    /// <summary>Starts and stops the agent with the host; a stop drains (heartbeats say draining, then DEREGISTER).</summary>
    private sealed class AgentService(AppServerAgent agent) : IHostedService, IAsyncDisposable
    {
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            try
            {
                await agent.StartAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex)
            {
                throw new StartupException($"cannot listen on {agent.Options.ListenEndPoint}: {ex.Message}", ex);
            }
            catch (ArgumentException ex)
            {
                throw new StartupException(ex.Message, ex);
            }
        }

        public Task StopAsync(CancellationToken cancellationToken) => agent.StopAsync(cancellationToken);

        public ValueTask DisposeAsync() => agent.DisposeAsync();
    }
}
