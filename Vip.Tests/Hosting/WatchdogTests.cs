using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging.Abstractions;
using Vip.Daemons.Hosting;

namespace Vip.Tests.Hosting;

[TestFixture]
public sealed class WatchdogTests
{
    [Test]
    public void Watchdog_pets_at_half_of_WATCHDOG_USEC()
    {
        var s = WatchdogSettings.FromEnvironment(Env(("WATCHDOG_USEC", "20000000")), processId: 42);
        Assert.That(s.Interval, Is.EqualTo(TimeSpan.FromSeconds(10)));
    }

    [Test]
    public void Watchdog_for_our_pid_is_enabled_and_for_another_pid_is_not()
    {
        Assert.Multiple(() =>
        {
            Assert.That(WatchdogSettings.FromEnvironment(Env(("WATCHDOG_USEC", "1000000"), ("WATCHDOG_PID", "42")), 42).Enabled, Is.True);
            Assert.That(WatchdogSettings.FromEnvironment(Env(("WATCHDOG_USEC", "1000000"), ("WATCHDOG_PID", "43")), 42).Enabled, Is.False);
            Assert.That(WatchdogSettings.FromEnvironment(Env(("WATCHDOG_USEC", "1000000"), ("WATCHDOG_PID", "x")), 42).Enabled, Is.False);
        });
    }

    [TestCase(null)]
    [TestCase("")]
    [TestCase("0")]
    [TestCase("-5")]
    [TestCase("soon")]
    public void Watchdog_without_a_positive_WATCHDOG_USEC_is_off(string? usec)
        => Assert.That(WatchdogSettings.FromEnvironment(Env(("WATCHDOG_USEC", usec)), 42).Enabled, Is.False);

    [Test]
    public void Pets_only_after_start_and_never_after_stopping_begins()
    {
        using var rig = new Rig();
        rig.Watchdog.StartAsync(default).GetAwaiter().GetResult();
        Assert.That(rig.Time.Timers, Is.Empty, "no timer before the host has started");

        rig.Lifetime.NotifyStarted();
        rig.Time.FireAll();
        rig.Time.FireAll();
        Assert.That(rig.Notifier.Sent, Is.EqualTo(new[] { "WATCHDOG=1", "WATCHDOG=1" }));

        rig.Lifetime.StopApplication();
        rig.Time.FireAll(); // a tick already queued when stopping began must not pet
        Assert.That(rig.Notifier.Sent, Has.Count.EqualTo(2));
        Assert.That(rig.Time.Timers.All(t => t.Disposed), Is.True);
    }

    [Test]
    public void Unhealthy_component_withholds_the_pet_until_it_recovers()
    {
        using var rig = new Rig();
        rig.Watchdog.StartAsync(default).GetAwaiter().GetResult();
        rig.Lifetime.NotifyStarted();

        rig.Health.Report("tier2.listener", healthy: false, "accept loop faulted");
        rig.Time.FireAll();
        rig.Time.FireAll();
        Assert.That(rig.Notifier.Sent, Is.EqualTo(new[] { "STATUS=unhealthy: tier2.listener: accept loop faulted" }));

        rig.Health.Report("tier2.listener", healthy: true);
        rig.Time.FireAll();
        Assert.That(rig.Notifier.Sent.Skip(1), Is.EqualTo(new[] { "WATCHDOG=1", "STATUS=healthy" }));
    }

    [Test]
    public void Failing_probe_withholds_the_pet()
    {
        using var rig = new Rig();
        rig.Watchdog.StartAsync(default).GetAwaiter().GetResult();
        rig.Lifetime.NotifyStarted();
        string? problem = "store writer stuck";
        using (rig.Health.AddProbe("store", () => problem))
        {
            rig.Time.FireAll();
            Assert.That(rig.Notifier.Sent.Count(m => m == "WATCHDOG=1"), Is.Zero);
            problem = null;
            rig.Time.FireAll();
            Assert.That(rig.Notifier.Sent.Count(m => m == "WATCHDOG=1"), Is.EqualTo(1));
        }
    }

    [Test]
    public void Without_a_systemd_notifier_the_watchdog_stays_off()
    {
        using var rig = new Rig(withNotifier: false);
        rig.Watchdog.StartAsync(default).GetAwaiter().GetResult();
        rig.Lifetime.NotifyStarted();
        Assert.Multiple(() =>
        {
            Assert.That(rig.Watchdog.Active, Is.False);
            Assert.That(rig.Time.Timers, Is.Empty);
        });
    }

    [Test]
    public void Probe_that_throws_counts_as_unhealthy_and_a_disposed_probe_is_gone()
    {
        var health = new VipHealth();
        var probe = health.AddProbe("x", () => throw new InvalidOperationException("boom"));
        Assert.Multiple(() =>
        {
            Assert.That(health.Check(out var why), Is.False);
            Assert.That(why, Does.Contain("boom"));
        });
        probe.Dispose();
        Assert.That(health.Check(out _), Is.True);
        Assert.That(() => { using var a = health.AddProbe("y", () => null); health.AddProbe("y", () => null); }, Throws.InvalidOperationException);
    }

    private static Func<string, string?> Env(params (string Name, string? Value)[] vars)
        => name => vars.FirstOrDefault(v => v.Name == name).Value;

    private sealed class Rig : IDisposable
    {
        public Rig(bool withNotifier = true)
        {
            var services = new ServiceCollection();
            if (withNotifier)
            {
                services.AddSingleton<ISystemdNotifier>(Notifier);
            }

            Provider = services.BuildServiceProvider();
            Lifetime = new ApplicationLifetime(NullLogger<ApplicationLifetime>.Instance);
            Watchdog = new SystemdWatchdog(Provider, Health, Lifetime, NullLogger<SystemdWatchdog>.Instance, Time, new WatchdogSettings(TimeSpan.FromSeconds(5)));
        }

        public RecordingNotifier Notifier { get; } = new();
        public VipHealth Health { get; } = new();
        public ManualTimeProvider Time { get; } = new();
        public ServiceProvider Provider { get; }
        public ApplicationLifetime Lifetime { get; }
        public SystemdWatchdog Watchdog { get; }

        public void Dispose()
        {
            Watchdog.Dispose();
            Provider.Dispose();
        }
    }

    private sealed class RecordingNotifier : ISystemdNotifier
    {
        public List<string> Sent { get; } = [];
        public bool IsEnabled => true;
        public void Notify(ServiceState state) => Sent.Add(state.ToString());
    }
}

/// <summary>A TimeProvider whose timers fire only when the test says so.</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    public List<ManualTimer> Timers { get; } = [];

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var t = new ManualTimer(callback, state);
        Timers.Add(t);
        return t;
    }

    /// <summary>Fires every timer once (disposed timers too: a callback may already be queued when a timer is disposed).</summary>
    public void FireAll()
    {
        foreach (var t in Timers.ToList())
        {
            t.Fire();
        }
    }

    internal sealed class ManualTimer(TimerCallback callback, object? state) : ITimer
    {
        public bool Disposed { get; private set; }
        public void Fire() => callback(state);
        public bool Change(TimeSpan dueTime, TimeSpan period) => !Disposed;
        public void Dispose() => Disposed = true;
        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
