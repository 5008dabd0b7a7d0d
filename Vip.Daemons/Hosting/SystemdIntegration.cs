using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging.Console;

namespace Vip.Daemons.Hosting;

/// <summary>
/// <c>AddSystemd()</c> with a detection that works in hardened units: Microsoft.Extensions.Hosting.Systemd 10.0
/// recognises a service only by its parent's <c>/proc/PPID/comm</c> being "systemd", which ProtectProc=invisible
/// hides, so it would never send READY=1 and a Type=notify unit would time out. systemd ≥ 248 sets
/// <c>SYSTEMD_EXEC_PID</c> to the service's main pid; when it is ours we register the same lifetime ourselves.
/// </summary>
internal static class SystemdIntegration
{
    /// <summary>True when this process is a systemd service (by either detection).</summary>
    public static bool IsSystemdService(Func<string, string?> getVariable, int processId)
    {
        if (SystemdHelpers.IsSystemdService())
        {
            return true;
        }

        var execPid = getVariable("SYSTEMD_EXEC_PID");
        return int.TryParse(execPid, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid == processId;
    }

    /// <summary>Registers the systemd lifetime (READY=1, STOPPING=1), notifier and journald log format when under systemd.</summary>
    public static IServiceCollection AddVipSystemd(this IServiceCollection services)
    {
        services.AddSystemd();
        if (!SystemdHelpers.IsSystemdService() && IsSystemdService(Environment.GetEnvironmentVariable, Environment.ProcessId))
        {
            // The same three registrations AddSystemd makes when its own detection succeeds.
            services.Configure<ConsoleLoggerOptions>(o => o.FormatterName = ConsoleFormatterNames.Systemd);
            services.AddSingleton<ISystemdNotifier, SystemdNotifier>();
            services.AddSingleton<IHostLifetime, SystemdLifetime>();
        }

        return services;
    }
}
