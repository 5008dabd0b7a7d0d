using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;

namespace Vip.Daemons.Hosting;

/// <summary>When systemd asks for a watchdog (<c>WATCHDOG_USEC</c>), what interval to pet it at.</summary>
internal sealed record WatchdogSettings(TimeSpan Interval)
{
    /// <summary>No watchdog requested.</summary>
    public static WatchdogSettings Disabled { get; } = new(TimeSpan.Zero);

    /// <summary>True when the watchdog is requested for this process.</summary>
    public bool Enabled => Interval > TimeSpan.Zero;

    /// <summary>
    /// Reads <c>WATCHDOG_USEC</c> and <c>WATCHDOG_PID</c> the way sd_watchdog_enabled(3) does: enabled when the
    /// interval is a positive number and the pid is absent or ours. Pets at half the interval, as systemd advises.
    /// </summary>
    public static WatchdogSettings FromEnvironment(Func<string, string?> getVariable, int processId)
    {
        var usecText = getVariable("WATCHDOG_USEC");
        if (string.IsNullOrEmpty(usecText)
            || !ulong.TryParse(usecText, NumberStyles.None, CultureInfo.InvariantCulture, out var usec)
            || usec == 0)
        {
            return Disabled;
        }

        var pidText = getVariable("WATCHDOG_PID");
        if (!string.IsNullOrEmpty(pidText)
            && (!int.TryParse(pidText, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid != processId))
        {
            return Disabled;
        }

        // Half the deadline; never below 1 ms so a silly value cannot spin a core.
        var half = TimeSpan.FromMicroseconds(Math.Min(usec / 2, (ulong)TimeSpan.FromDays(1).TotalMicroseconds));
        return new WatchdogSettings(half < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : half);
    }
}

/// <summary>
/// Sends <c>WATCHDOG=1</c> to systemd at half of <c>WATCHDOG_USEC</c> while <see cref="VipHealth"/> says the
/// host is healthy (Microsoft.Extensions.Hosting.Systemd sends READY=1 and STOPPING=1 but not this).
/// </summary>
/// <remarks>
/// Petting starts when the host has started (after READY=1) and stops for good when it starts stopping (before
/// STOPPING=1: our ApplicationStopping callback is registered after SystemdLifetime's, and cancellation callbacks
/// run last-registered first). The timer runs on the thread pool, so a starved pool also stops the petting —
/// that is a fault systemd should see. Health transitions are sent as <c>STATUS=</c> lines for <c>systemctl status</c>.
/// </remarks>
internal sealed class SystemdWatchdog : IHostedService, IDisposable
{
    private static readonly ServiceState Pet = new("WATCHDOG=1");

    private readonly ISystemdNotifier? _notifier;
    private readonly VipHealth _health;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly WatchdogSettings _settings;
    private readonly Lock _gate = new();
    private ITimer? _timer;
    private bool _stopped;
    private bool _wasHealthy = true;
    private bool _notifyFailing;
    private CancellationTokenRegistration _startedRegistration;
    private CancellationTokenRegistration _stoppingRegistration;

    public SystemdWatchdog(
        IServiceProvider services, VipHealth health, IHostApplicationLifetime lifetime, ILogger<SystemdWatchdog> log,
        TimeProvider time, WatchdogSettings settings)
    {
        // Registered by AddSystemd only when the process runs as a systemd service.
        _notifier = services.GetService<ISystemdNotifier>();
        _health = health;
        _lifetime = lifetime;
        _log = log;
        _time = time;
        _settings = settings;
    }

    /// <summary>True when this host pets a systemd watchdog.</summary>
    public bool Active => _notifier is { IsEnabled: true } && _settings.Enabled;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!Active)
        {
            return Task.CompletedTask;
        }

        _stoppingRegistration = _lifetime.ApplicationStopping.Register(static s => ((SystemdWatchdog)s!).Halt(), this);
        _startedRegistration = _lifetime.ApplicationStarted.Register(static s => ((SystemdWatchdog)s!).Begin(), this);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Halt();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        Halt();
        _startedRegistration.Dispose();
        _stoppingRegistration.Dispose();
    }

    private void Begin()
    {
        lock (_gate)
        {
            if (_stopped || _timer is not null)
            {
                return;
            }

            HostingLog.WatchdogEnabled(_log, _settings.Interval.TotalMilliseconds);
            _timer = _time.CreateTimer(static s => ((SystemdWatchdog)s!).Tick(), this, _settings.Interval, _settings.Interval);
        }
    }

    private void Halt()
    {
        lock (_gate)
        {
            _stopped = true;
            _timer?.Dispose();
            _timer = null;
        }
    }

    private void Tick()
    {
        lock (_gate)
        {
            if (_stopped)
            {
                return;
            }

            var healthy = _health.Check(out var problem);
            try
            {
                if (healthy)
                {
                    _notifier!.Notify(Pet);
                    _notifyFailing = false;
                    if (!_wasHealthy)
                    {
                        HostingLog.HealthRestored(_log);
                        _notifier.Notify(new ServiceState("STATUS=healthy"));
                    }
                }
                else if (_wasHealthy)
                {
                    HostingLog.WatchdogWithheld(_log, problem!);
                    _notifier!.Notify(new ServiceState("STATUS=unhealthy: " + OneLine(problem!)));
                }
            }
            catch (Exception ex) when (ex is System.Net.Sockets.SocketException or ObjectDisposedException)
            {
                // systemd went away (or the socket is gone): nothing to pet; say so once, not at every tick.
                if (!_notifyFailing)
                {
                    _notifyFailing = true;
                    HostingLog.NotifyFailed(_log, ex.Message);
                }
            }

            _wasHealthy = healthy;
        }
    }

    private static string OneLine(string s) => s.ReplaceLineEndings(" ");
}
