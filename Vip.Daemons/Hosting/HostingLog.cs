using Microsoft.Extensions.Logging;

namespace Vip.Daemons.Hosting;

/// <summary>Log messages of the hosting layer (event ids 100–199).</summary>
internal static partial class HostingLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "vipd {Role} started (pid {Pid}, systemd {Systemd}, watchdog {Watchdog})")]
    public static partial void Started(ILogger logger, string role, int pid, bool systemd, bool watchdog);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "vipd {Role} stopping")]
    public static partial void Stopping(ILogger logger, string role);

    [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "vipd {Role} stopped")]
    public static partial void Stopped(ILogger logger, string role);

    [LoggerMessage(EventId = 110, Level = LogLevel.Debug, Message = "systemd watchdog enabled: petting every {IntervalMs} ms")]
    public static partial void WatchdogEnabled(ILogger logger, double intervalMs);

    [LoggerMessage(EventId = 111, Level = LogLevel.Warning, Message = "unhealthy, withholding the systemd watchdog: {Problem}")]
    public static partial void WatchdogWithheld(ILogger logger, string problem);

    [LoggerMessage(EventId = 112, Level = LogLevel.Information, Message = "healthy again, petting the systemd watchdog")]
    public static partial void HealthRestored(ILogger logger);

    [LoggerMessage(EventId = 113, Level = LogLevel.Warning, Message = "cannot notify systemd: {Reason}")]
    public static partial void NotifyFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 120, Level = LogLevel.Information, Message = "Prometheus metrics on http://{Endpoint}/metrics (meters Vip.*, System.Runtime)")]
    public static partial void MetricsListening(ILogger logger, string endpoint);

    [LoggerMessage(EventId = 130, Level = LogLevel.Critical, Message = "a background service failed; stopping with a non-zero exit code")]
    public static partial void BackgroundServiceFailed(ILogger logger, Exception exception);
}
