namespace Vip.Tests.Hosting;

/// <summary>vipd as a Type=notify service: what systemd would receive on NOTIFY_SOCKET.</summary>
[TestFixture]
public sealed class SystemdNotifyTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(60);

    /// <summary>A long-running role that needs nothing else: the VIP box (a backend that is down is fine: it still listens).</summary>
    internal static string[] LongRunningRole() => ["vip", "--listen", "127.0.0.1:0", "--backends", "127.0.0.1:9"];

    [Test]
    public async Task Ready_watchdog_and_stopping_arrive_in_order_and_SIGTERM_exits_0()
    {
        using var notify = new NotifySocket();
        using var vipd = VipdProcess.StartAsSystemdService(LongRunningRole(), new Dictionary<string, string?>
        {
            ["NOTIFY_SOCKET"] = notify.Path,
            ["WATCHDOG_USEC"] = "1000000", // systemd's WatchdogSec=1s: vipd pets every 500 ms
        });

        await notify.WaitForAsync("READY=1", Generous);
        await notify.WaitForAsync("WATCHDOG=1", Generous);
        await notify.WaitForAsync("WATCHDOG=1", Generous); // keeps petting, not a one-off
        vipd.Terminate();
        await notify.WaitForAsync("STOPPING=1", Generous);
        var exitCode = await vipd.WaitForExitAsync(Generous);
        notify.Drain();

        var got = notify.Received.Where(m => m is "READY=1" or "WATCHDOG=1" or "STOPPING=1").ToList();
        var ready = got.IndexOf("READY=1");
        var firstPet = got.IndexOf("WATCHDOG=1");
        var stopping = got.IndexOf("STOPPING=1");
        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.Zero, vipd.StandardError);
            Assert.That(got.Count(m => m == "READY=1"), Is.EqualTo(1), string.Join(", ", got));
            Assert.That(ready, Is.LessThan(firstPet), "READY=1 before the first WATCHDOG=1: " + string.Join(", ", got));
            Assert.That(firstPet, Is.LessThan(stopping), string.Join(", ", got));
            Assert.That(got.Skip(stopping + 1), Is.Empty, "nothing after STOPPING=1: " + string.Join(", ", got));
            // Under systemd the console logs use the journald format: "<6>category[id] message".
            Assert.That(vipd.StandardError, Does.Contain("<6>Vip.Hosting[100]"));
        });
    }

    [Test]
    public async Task Outside_systemd_nothing_is_sent_and_logs_are_plain_lines()
    {
        using var notify = new NotifySocket();
        // NOTIFY_SOCKET alone (no SYSTEMD_EXEC_PID, parent not systemd) is not a systemd service.
        using var vipd = VipdProcess.Start(LongRunningRole(), new Dictionary<string, string?>
        {
            ["NOTIFY_SOCKET"] = notify.Path,
            ["WATCHDOG_USEC"] = "1000000",
        });

        await WaitForLogAsync(vipd, "[100]", Generous);
        vipd.Terminate();
        var exitCode = await vipd.WaitForExitAsync(Generous);
        notify.Drain();
        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.Zero, vipd.StandardError);
            Assert.That(notify.Received, Is.Empty);
            Assert.That(vipd.StandardError, Does.Contain("info: Vip.Hosting[100]"));
            Assert.That(vipd.StandardOutput, Is.Empty, "logs go to stderr; stdout is for what a role prints");
        });
    }

    internal static async Task WaitForLogAsync(VipdProcess vipd, string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!vipd.StandardError.Contains(text, StringComparison.Ordinal))
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"no '{text}' in vipd's log within {timeout}:\n{vipd.StandardError}");
            }

            await Task.Delay(50);
        }
    }
}
