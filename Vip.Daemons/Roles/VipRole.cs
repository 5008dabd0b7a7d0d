using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Vip.Daemons.Hosting;
using Vip.Forwarding;

namespace Vip.Daemons.Roles;

/// <summary><c>vipd vip</c>: the VIP box, forwarding TCP (and UDP) round-robin to backends.</summary>
internal sealed class VipRole : IRole
{
    /// <summary>The role's switches and the configuration keys they set.</summary>
    private static readonly Dictionary<string, string> Switches = new(StringComparer.Ordinal)
    {
        ["--listen"] = "Vip:Listen",
        ["--udp-listen"] = "Vip:UdpListen",
        ["--backends"] = "Vip:Backends",
        ["--udp-backends"] = "Vip:UdpBackends",
        ["--proxy-protocol"] = "Vip:ProxyProtocol",
        ["--max-connections"] = "Vip:MaxConnections",
        ["--max-per-source"] = "Vip:MaxConnectionsPerSource",
        ["--connect-timeout"] = "Vip:ConnectTimeout",
        ["--idle-timeout"] = "Vip:IdleTimeout",
        ["--drain-timeout"] = "Vip:DrainTimeout",
        ["--health"] = "Vip:HealthCheck:Mode",
        ["--health-interval"] = "Vip:HealthCheck:Interval",
        ["--inline-completions"] = "Vip:InlineCompletions",
        ["--transport"] = "Vip:Transport",
    };

    public string Name => "vip";

    public string Summary => "the VIP box: forward TCP/UDP connections round-robin to backends";

    public string Usage => """
        usage: vipd vip --listen HOST:PORT[,HOST:PORT...] --backends HOST:PORT[,HOST:PORT...] [switches]

          --listen HOST:PORT           TCP listen address(es); *:PORT for every address      (Vip:Listen, required)
          --udp-listen HOST:PORT       also forward UDP datagrams, in sessions               (Vip:UdpListen)
          --backends LIST              backends, comma-separated, in round-robin order       (Vip:Backends, required)
          --udp-backends LIST          UDP backends if not the same as --backends            (Vip:UdpBackends)
          --proxy-protocol             send a PROXY protocol v2 header to the backends       (Vip:ProxyProtocol, false)
          --max-connections N          client connections at once                            (Vip:MaxConnections, 4096)
          --max-per-source N           connections per client IP, 0 = no cap                 (Vip:MaxConnectionsPerSource, 0)
          --connect-timeout T          per backend connect attempt                           (Vip:ConnectTimeout, 00:00:03)
          --idle-timeout T             close connections quiet for this long                 (Vip:IdleTimeout, 00:05:00)
          --drain-timeout T            on stop, let connections finish for this long         (Vip:DrainTimeout, 00:00:30)
          --health None|Tcp|Ping       active health check                                   (Vip:HealthCheck:Mode, Tcp)
          --health-interval T          time between checks                                   (Vip:HealthCheck:Interval, 00:00:01)
          --transport MODE             Auto, Epoll (Linux) or Sockets: how bytes are moved  (Vip:Transport, Auto)
          --inline-completions BOOL    run socket completions on the event threads           (Vip:InlineCompletions, true)
          --Vip:KEY VALUE              any other key of the Vip section (see docs/operations.md)

        Every switch is also a key in appsettings.json (section "Vip") and an environment variable
        (VIPD_Vip__Listen, VIPD_Vip__Backends, ...). In appsettings, Backends may be a list of
        { "Address": "HOST:PORT", "Weight": 2, "ProxyProtocol": true } objects; the list is reloaded
        when the file changes, without dropping live connections.
        """;

    public async Task<int> RunAsync(string[] args) => await RoleHost.RunAsync(Build(args)).ConfigureAwait(false);

    /// <summary>Builds the role's host from <paramref name="args"/> and every configuration source, without starting it.</summary>
    internal IHost Build(string[] args)
    {
        var builder = RoleHost.CreateBuilder(Name, args, Switches);
        var section = builder.Configuration.GetSection(ForwarderOptions.SectionName);
        RoleHost.UseInlineCompletions(section);

        builder.Services.AddVipForwarder();
        builder.Services.AddOptions<ForwarderOptions>()
            .Bind(section)
            .PostConfigure(o =>
            {
                ReadBackends(section.GetSection("Backends"), o.Backends);
                ReadBackends(section.GetSection("UdpBackends"), o.UdpBackends);
            });
        builder.Services.AddHostedService<VipHostedService>();
        var drain = section.GetValue("DrainTimeout", new ForwarderOptions().DrainTimeout);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = drain + TimeSpan.FromSeconds(5));

        return builder.Build();
    }

    /// <summary>
    /// Reads a backend list that is either one string (<c>a:1,b:2</c>, from a switch or an environment variable),
    /// a list of strings, or a list of objects with Address, Weight and ProxyProtocol.
    /// </summary>
    internal static void ReadBackends(IConfigurationSection section, IList<BackendOptions> target)
    {
        target.Clear();
        if (section.Value is { } flat)
        {
            foreach (var address in flat.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                target.Add(new BackendOptions { Address = address });
            }

            return;
        }

        foreach (var child in section.GetChildren().OrderBy(c => int.TryParse(c.Key, out var i) ? i : int.MaxValue))
        {
            if (child.Value is { } value)
            {
                foreach (var address in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                {
                    target.Add(new BackendOptions { Address = address });
                }
            }
            else
            {
                target.Add(new BackendOptions
                {
                    Address = child["Address"] ?? "",
                    Weight = child.GetValue("Weight", 1),
                    ProxyProtocol = child.GetValue<bool?>("ProxyProtocol"),
                });
            }
        }
    }
}

/// <summary>Starts the forwarder with the host (bind errors surface as start-up failures) and drains it on stop.</summary>
internal sealed class VipHostedService(VipForwarder forwarder) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => forwarder.StartAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => forwarder.StopAsync(cancellationToken);
}
