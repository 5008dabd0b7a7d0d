using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Vip.Daemons.Hosting;

/// <summary>Builds and runs the generic host of one role: configuration, logging, systemd, health, metrics.</summary>
/// <remarks>
/// <para>Configuration, lowest precedence first: <c>appsettings.json</c> and <c>appsettings.ROLE.json</c> next to the
/// executable, then the same two in the working directory, then the file named by <c>--config PATH</c> (or the
/// <c>VIPD_CONFIG</c> environment variable; reloaded when it changes), then environment variables prefixed
/// <c>VIPD_</c> (<c>__</c> separates sections: <c>VIPD_Vip__Listen</c>), then command-line switches. Each role maps its
/// short switches (<c>--listen</c>) onto configuration keys (<c>Vip:Listen</c>); switches listed as repeatable
/// (<c>--attr k=v --attr k=v</c>) become indexed keys (<c>App:Attr:0</c>, <c>App:Attr:1</c>). Every role also takes
/// <c>--config PATH</c> and <c>--metrics HOST:PORT</c> (<see cref="MetricsExport"/>).</para>
/// <para><b>For role authors</b> — what makes a role a well-behaved daemon:</para>
/// <list type="number">
/// <item><b>Bind listeners in <c>IHostedService.StartAsync</c></b> (not in <c>ExecuteAsync</c> of a
/// <c>BackgroundService</c>, which runs after start-up has been declared done). systemd gets READY=1 when every
/// hosted service's StartAsync has returned, and READY=1 must mean "listening": a client, a health check or the
/// next unit in the chain (After=) may connect the moment it arrives. Wrap the bind in
/// <see cref="ConfigParse.Bind{T}"/> so "address in use" names the configuration key.</item>
/// <item><b>Parse and check configuration before anything opens</b>, with <see cref="ConfigParse"/> (addresses,
/// lists, files that must exist, paths that must be writable, durations) or
/// <see cref="ValidatedOptions.AddValidatedOptions{TOptions}"/>. Both become one clear line and exit code 78.</item>
/// <item><b>Report health</b> through <see cref="IHealthSignal"/> (from DI): <c>Report(component, healthy, reason)</c>
/// on a change, or <c>AddProbe(component, () =&gt; reasonOrNull)</c>. While anything is unhealthy the systemd
/// watchdog is not petted and systemd restarts the service.</item>
/// <item><b>Drain in <c>StopAsync</c></b>: stop accepting, let work in flight finish within the token's deadline
/// (<see cref="HostOptions.ShutdownTimeout"/>, 30 s; the unit files allow 45 s), then return. SIGTERM ends in exit 0.</item>
/// <item>Durable files go under <see cref="StateDirectory"/> by default (systemd's StateDirectory=).</item>
/// </list>
/// </remarks>
internal static class RoleHost
{
    /// <summary>Switches every role accepts, and the configuration keys they set.</summary>
    public static IReadOnlyDictionary<string, string> CommonSwitches { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["--config"] = ConfigFileKey,
        ["--metrics"] = MetricsExport.ListenKey,
    };

    /// <summary>Configuration key of the extra JSON file (<c>--config</c>, or env <c>VIPD_CONFIG</c>).</summary>
    public const string ConfigFileKey = "Config";

    /// <summary>
    /// Where a role keeps durable files when configuration names no path: systemd's <c>$STATE_DIRECTORY</c>
    /// (the first entry, from StateDirectory= in the unit) or, outside systemd, the working directory.
    /// </summary>
    public static string StateDirectory
    {
        get
        {
            var fromSystemd = Environment.GetEnvironmentVariable("STATE_DIRECTORY");
            return string.IsNullOrEmpty(fromSystemd) ? Directory.GetCurrentDirectory() : fromSystemd.Split(':')[0];
        }
    }

    /// <summary>The environment variable the .NET socket engine reads for inline completions.</summary>
    internal const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>
    /// Runs socket completions on the socket-engine threads (no thread-pool hop per receive) unless the role's
    /// <c>InlineCompletions</c> key in <paramref name="section"/> is false. A process-wide lever the engine reads
    /// once, when the first socket operation starts, so call it before the host opens any socket; an explicit
    /// environment variable wins. For roles whose socket continuations never block (vip, tier1, tier2).
    /// </summary>
    public static void UseInlineCompletions(IConfiguration section)
    {
        if (section.GetValue("InlineCompletions", true) && Environment.GetEnvironmentVariable(InlineCompletionsVariable) is null)
        {
            Environment.SetEnvironmentVariable(InlineCompletionsVariable, "1");
        }
    }

    /// <summary>Creates a host builder for <paramref name="role"/> with configuration from every source.</summary>
    /// <exception cref="StartupException">A switch is unknown, or a configuration file is missing or malformed.</exception>
    public static HostApplicationBuilder CreateBuilder(
        string role,
        string[] args,
        IReadOnlyDictionary<string, string> switchMappings,
        IReadOnlyCollection<string>? repeatableSwitches = null)
    {
        ArgumentNullException.ThrowIfNull(switchMappings);
        var mappings = new Dictionary<string, string>(CommonSwitches, StringComparer.Ordinal);
        foreach (var (name, key) in switchMappings)
        {
            mappings[name] = key; // a role may redefine a common switch
        }

        var switches = SwitchParser.Parse(args, mappings, repeatableSwitches ?? []);
        HostApplicationBuilder builder;
        try
        {
            builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
            {
                ApplicationName = "vipd-" + role,
                ContentRootPath = AppContext.BaseDirectory,
                DisableDefaults = false,
            });

            var baseDir = AppContext.BaseDirectory;
            builder.Configuration.AddJsonFile(Path.Combine(baseDir, $"appsettings.{role}.json"), optional: true, reloadOnChange: true);

            // The working directory is whatever the caller had (often "/" under systemd): read, but never watched,
            // because a watcher on a directory covers everything below it.
            var cwd = Directory.GetCurrentDirectory();
            if (!string.Equals(Path.GetFullPath(cwd).TrimEnd('/'), Path.GetFullPath(baseDir).TrimEnd('/'), StringComparison.Ordinal))
            {
                builder.Configuration.AddJsonFile(Path.Combine(cwd, "appsettings.json"), optional: true, reloadOnChange: false);
                builder.Configuration.AddJsonFile(Path.Combine(cwd, $"appsettings.{role}.json"), optional: true, reloadOnChange: false);
            }

            var configFile = switches.GetValueOrDefault(ConfigFileKey) ?? Environment.GetEnvironmentVariable("VIPD_CONFIG");
            if (!string.IsNullOrWhiteSpace(configFile))
            {
                var path = ConfigParse.ReadableFile(configFile, "--config");
                builder.Configuration.AddJsonFile(path, optional: false, reloadOnChange: true);
            }

            builder.Configuration.AddEnvironmentVariables("VIPD_");
            builder.Configuration.AddInMemoryCollection(switches);
        }
        catch (Exception ex) when (ex is not StartupException && StartupErrors.TryDescribe(ex, out var line))
        {
            throw new StartupException(line, ex);
        }

        ConfigureLogging(builder);

        // Type=notify: READY=1 once every hosted service has started, STOPPING=1 on stop, journald log format.
        // Only active when the process runs as a systemd service (see SystemdIntegration for the detection).
        builder.Services.AddVipSystemd();
        builder.Services.Configure<HostOptions>(o =>
        {
            o.ShutdownTimeout = TimeSpan.FromSeconds(30);
            o.BackgroundServiceExceptionBehavior = BackgroundServiceExceptionBehavior.StopHost;
        });

        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<VipHealth>();
        builder.Services.AddSingleton<IHealthSignal>(sp => sp.GetRequiredService<VipHealth>());
        builder.Services.AddSingleton(WatchdogSettings.FromEnvironment(Environment.GetEnvironmentVariable, Environment.ProcessId));
        builder.Services.AddSingleton<SystemdWatchdog>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<SystemdWatchdog>());
        builder.Services.AddSingleton(new RoleIdentity(role, MetricsExport.AddIfConfigured(builder, role)?.ToString()));
        return builder;
    }

    /// <summary>
    /// Runs the host until SIGTERM/SIGINT (exit code 0). A start-up failure caused by configuration or the
    /// environment becomes a <see cref="StartupException"/> (one line, exit code 78, printed by <c>Vipd</c>);
    /// a background service that faults makes the exit code non-zero so systemd's Restart=on-failure applies.
    /// </summary>
    public static async Task<int> RunAsync(IHost host)
    {
        ArgumentNullException.ThrowIfNull(host);
        var services = host.Services;
        var identity = services.GetService<RoleIdentity>() ?? new RoleIdentity("?", null);
        var log = services.GetRequiredService<ILoggerFactory>().CreateLogger("Vip.Hosting");
        var quiet = services.GetService<StartupQuiet>();
        try
        {
            try
            {
                await host.StartAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not StartupException && StartupErrors.TryDescribe(ex, out var line))
            {
                throw new StartupException(line, ex);
            }
            finally
            {
                quiet?.End();
            }

            var watchdog = services.GetRequiredService<SystemdWatchdog>();
            HostingLog.Started(log, identity.Role, Environment.ProcessId, services.GetService<ISystemdNotifier>() is { IsEnabled: true }, watchdog.Active);
            if (identity.Metrics is { } metrics)
            {
                HostingLog.MetricsListening(log, metrics);
            }

            var lifetime = services.GetRequiredService<IHostApplicationLifetime>();
            using (lifetime.ApplicationStopping.Register(() => HostingLog.Stopping(log, identity.Role)))
            {
                await host.WaitForShutdownAsync().ConfigureAwait(false);
            }

            var faulted = services.GetServices<IHostedService>().OfType<BackgroundService>()
                .Select(s => s.ExecuteTask?.Exception).FirstOrDefault(e => e is not null);
            if (faulted is not null)
            {
                HostingLog.BackgroundServiceFailed(log, faulted);
                return ExitCodes.Failed;
            }

            HostingLog.Stopped(log, identity.Role);
            return ExitCodes.Ok;
        }
        finally
        {
            if (host is IAsyncDisposable d)
            {
                await d.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                host.Dispose();
            }
        }
    }

    private static void ConfigureLogging(HostApplicationBuilder builder)
    {
        // Logs go to stderr so that stdout stays for what a role prints (ctl tables, submit results, demo summary).
        // Outside systemd: one line per entry with a timestamp. Under systemd, AddSystemd (called after this, so it
        // wins) switches the console formatter to the systemd one: "<6>category[id] message", which journald reads
        // as priority + text and time-stamps itself.
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
            o.UseUtcTimestamp = false;
        });
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);

        // When start-up fails the host logs the exception with its stack; we print one line instead (RunAsync).
        var quiet = new StartupQuiet();
        builder.Services.AddSingleton(quiet);
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", level => level >= LogLevel.Information && !(quiet.Active && level >= LogLevel.Error));
    }

    /// <summary>The role this host runs and, when exported, the metrics endpoint (for the start-up log line).</summary>
    private sealed record RoleIdentity(string Role, string? Metrics);

    /// <summary>True until start-up has finished: silences the host's own start-failure log (we print one line).</summary>
    private sealed class StartupQuiet
    {
        private volatile bool _active = true;

        public bool Active => _active;

        public void End() => _active = false;
    }
}
