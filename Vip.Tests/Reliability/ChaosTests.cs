using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Vip.Client;
using Vip.Protocol;
using Vip.Tests.Reliability.Harness;

namespace Vip.Tests.Reliability;

/// <summary>
/// Chaos on a whole system of separate vipd processes on loopback hosts (VIP, two tier-1, two tier-2, three app
/// servers): steady load from many clients through VipClient while one tier-1, one tier-2 and one app server are
/// killed with SIGKILL at random moments and restarted. Every task must end explicitly (completed, or an error the
/// client library raised) before its deadline; and each failure must be routed around: the VIP box marks the dead
/// tier-1 down, the tier-1 daemons take the dead tier-2 out of rotation, the tier-2 daemons drop the dead app server.
/// The measured times are printed (docs/reliability.md records them against the targets).
/// </summary>
[TestFixture]
[NonParallelizable]
public class ChaosTests
{
    private static readonly TimeSpan TaskTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(10);

    // One round takes 60-90 s on a 2-core machine (eight daemons starting, three restarts rejoining), over the ~30 s
    // budget of the default suite: both variants are Long (VIP_LONG=1 dotnet cake --target=Test).
    [Test]
    [Category("Long")]
    [CancelAfter(240_000)]
    public async Task Killing_a_tier1_a_tier2_and_an_app_server_under_load_loses_no_task()
        => await RunChaosAsync(rounds: 1, workers: 8, seed: Environment.TickCount);

    [Test]
    [Category("Long")]
    [CancelAfter(900_000)]
    public async Task Repeated_kills_under_heavier_load_lose_no_task()
        => await RunChaosAsync(rounds: 5, workers: 32, seed: Environment.TickCount);

    private static async Task RunChaosAsync(int rounds, int workers, int seed)
    {
        var missing = VipCluster.MissingRole();
        if (missing is not null)
        {
            var message = $"SKIPPED — this build of vipd has no '{missing}' role yet, so the chaos test did NOT run";
            TestContext.Progress.WriteLine("!!! " + message);
            Assert.Ignore(message);
        }

        TestContext.Out.WriteLine($"chaos seed {seed} (rerun with this seed to repeat the kill moments)");
        var random = new Random(seed);
        var hosts = new LoopbackHosts();
        using var cluster = new VipCluster(_ => new ClusterHost(hosts.Next(), null), trustedProxies: "127.0.0.0/8");
        cluster.Start(CanConnect, TimeSpan.FromSeconds(60));
        var clientAddresses = Enumerable.Range(0, 4).Select(_ => hosts.Next()).ToArray();
        await WaitUntilServedAsync(cluster, clientAddresses[0]);

        var outcomes = new ConcurrentDictionary<string, int>();
        var completed = 0;
        using var stop = new CancellationTokenSource();
        var load = Enumerable.Range(0, workers).Select(w => Task.Run(() => WorkerAsync(cluster, clientAddresses[w % clientAddresses.Length], w, outcomes, () => Interlocked.Increment(ref completed), stop.Token))).ToArray();

        var measurements = new List<string>();
        var failures = new List<string>();
        for (var round = 0; round < rounds; round++)
        {
            measurements.Add(WaitSteady(cluster, failures));
            await Task.Delay(TimeSpan.FromMilliseconds(1500 + random.Next(2000)));
            var t1 = random.Next(2);
            measurements.Add(Measure($"tier-1 {cluster.Tier1[t1].Name} → VIP marks it down", cluster.Tier1[t1], random,
                since => cluster.Vip.FirstLineAfter(since, $"Backend {cluster.Tier1Hosts[t1].Address}:{VipCluster.Tier1Port} is down"), failures));

            measurements.Add(WaitSteady(cluster, failures));
            await Task.Delay(TimeSpan.FromMilliseconds(1000 + random.Next(2000)));
            var t2 = random.Next(2);
            var t2Address = $"{cluster.Tier2Hosts[t2].Address}:{VipCluster.Tier2Port}";
            measurements.Add(Measure($"tier-2 {cluster.Tier2[t2].Name} → every tier-1 routes around it", cluster.Tier2[t2], random,
                since => Latest(cluster.Tier1.Select(p => Earliest(p.FirstLineAfter(since, $"Tier-2 {t2Address} is down"), p.FirstLineAfter(since, $"Tier-2 {t2Address} taken out of rotation")))), failures));

            measurements.Add(WaitSteady(cluster, failures));
            await Task.Delay(TimeSpan.FromMilliseconds(1000 + random.Next(2000)));
            var app = random.Next(3);
            var appId = $"app{app + 1}";
            // The surviving tier-2 daemon(s) must drop the app server (the restarted tier-2 may not have known it).
            measurements.Add(Measure($"app server {appId} → tier-2 drops it", cluster.App[app], random,
                since => Earliest([.. cluster.Tier2.Select(p => Earliest(p.FirstLineAfter(since, $"Control link of app server {appId} closed"), p.FirstLineAfter(since, $"App server {appId} expired")))]), failures));
        }

        measurements.Add(WaitSteady(cluster, failures));
        await Task.Delay(TimeSpan.FromSeconds(2));
        await stop.CancelAsync();
        await Task.WhenAll(load);

        foreach (var m in measurements)
        {
            TestContext.Out.WriteLine(m);
        }

        var summary = string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key}={o.Value}"));
        TestContext.Out.WriteLine($"tasks: {summary}");
        Assert.Multiple(() =>
        {
            Assert.That(outcomes.GetValueOrDefault("hung"), Is.Zero, $"tasks hung past their deadline ({summary})\n{cluster.Output()}");
            Assert.That(outcomes.Keys.Where(k => k.StartsWith("unexpected", StringComparison.Ordinal)), Is.Empty, $"tasks failed with an undocumented error ({summary})");
            Assert.That(completed, Is.GreaterThan(0), "no task completed");
            Assert.That(failures, Is.Empty, string.Join("\n", failures) + "\n" + cluster.Output());
        });
    }

    // Kills `victim`, waits until `detected` reports the reaction (or 20 s), restarts it, and returns the measurement.
    private static string Measure(string what, VipdProcess victim, Random random, Func<long, long?> detected, List<string> failures)
    {
        var killedAt = Stopwatch.GetTimestamp();
        victim.Kill();
        long? at = null;
        var deadline = Stopwatch.GetTimestamp() + (20 * Stopwatch.Frequency);
        while (at is null && Stopwatch.GetTimestamp() < deadline)
        {
            Thread.Sleep(20);
            at = detected(killedAt);
        }

        Thread.Sleep(500 + random.Next(1000));
        victim.Start();
        if (at is null)
        {
            failures.Add($"{what}: not routed around within 20 s");
            return $"kill {what}: NOT detected within 20 s";
        }

        return $"kill {what}: {Stopwatch.GetElapsedTime(killedAt, at.Value).TotalMilliseconds:0} ms";
    }

    // Waits until every restarted daemon has rejoined: each tier-1 has every tier-2 link up since both last started, the
    // VIP box has every tier-1 up since it last started, and each app server is registered with every tier-2 since both
    // last started. Returns how long that took (printed), or records a failure after 60 s.
    private static string WaitSteady(VipCluster cluster, List<string> failures)
    {
        var started = Stopwatch.GetTimestamp();
        var deadline = started + (60 * Stopwatch.Frequency);
        string? missing;
        while ((missing = Unsteady(cluster)) is not null && Stopwatch.GetTimestamp() < deadline)
        {
            Thread.Sleep(50);
        }

        if (missing is not null)
        {
            failures.Add($"the system did not become whole again within 60 s: {missing}");
            return $"rejoin: NOT whole within 60 s ({missing})";
        }

        return $"  system whole again after {Stopwatch.GetElapsedTime(started).TotalMilliseconds:0} ms";
    }

    private static string? Unsteady(VipCluster cluster)
    {
        for (var i = 0; i < cluster.Tier1.Length; i++)
        {
            var t1 = cluster.Tier1[i];
            for (var j = 0; j < cluster.Tier2.Length; j++)
            {
                var since = Math.Max(t1.LastStartedAt, cluster.Tier2[j].LastStartedAt);
                if (t1.FirstLineAfter(since, $"Tier-2 {cluster.Tier2Hosts[j].Address}:{VipCluster.Tier2Port} is up") is null)
                {
                    return $"{t1.Name} has no link to {cluster.Tier2[j].Name}";
                }
            }

            // The VIP box marks a restarted tier-1 up again (only needed when it had marked it down).
            var backend = $"Backend {cluster.Tier1Hosts[i].Address}:{VipCluster.Tier1Port}";
            if (t1.Starts > 1 && cluster.Vip.FirstLineAfter(t1.LastStartedAt, backend + " is up") is null)
            {
                return $"the VIP box has not brought {t1.Name} back";
            }
        }

        for (var a = 0; a < cluster.App.Length; a++)
        {
            var app = cluster.App[a];
            for (var j = 0; j < cluster.Tier2.Length; j++)
            {
                var since = Math.Max(app.LastStartedAt, cluster.Tier2[j].LastStartedAt);
                if (app.FirstLineAfter(since, $"Registered with tier-2 {cluster.Tier2Hosts[j].Address}:{VipCluster.ControlPort}") is null)
                {
                    return $"{app.Name} is not registered with {cluster.Tier2[j].Name}";
                }
            }
        }

        return null;
    }

    private static long? Earliest(params long?[] times) => times.Where(t => t is not null).Min();

    private static long? Latest(IEnumerable<long?> times)
    {
        var all = times.ToList();
        return all.Any(t => t is null) ? null : all.Max();
    }

    private static async Task WorkerAsync(VipCluster cluster, IPAddress from, int worker, ConcurrentDictionary<string, int> outcomes, Action onCompleted, CancellationToken stop)
    {
        await using var client = new VipClient(new VipClientOptions
        {
            Vip = cluster.VipEndPoint,
            LocalAddress = from,
            TaskTimeout = TaskTimeout,
            RequestTimeout = TimeSpan.FromSeconds(3),
            MaxAttempts = 3,
        });
        for (var i = 0; i < 100_000 && !stop.IsCancellationRequested; i++)
        {
            var body = System.Text.Encoding.UTF8.GetBytes($"w{worker}-{i}");
            var task = new TaskRequest($"client-{worker}", "echo", [], "", body);
            using var guard = new CancellationTokenSource(TaskTimeout + Guard);
            string outcome;
            try
            {
                var run = await client.RunAsync(task, guard.Token);
                outcome = run.Result.Status == 0 && run.Result.Output.Span.SequenceEqual(body) ? "completed" : "unexpected-wrong-result";
                if (outcome == "completed")
                {
                    onCompleted();
                }
            }
            catch (VipRejectedException ex)
            {
                outcome = "rejected-" + ex.Code;
            }
            catch (VipClaimDeniedException ex)
            {
                outcome = "claim-denied-" + ex.Reason;
            }
            catch (VipUnreachableException)
            {
                outcome = "unreachable";
            }
            catch (OperationCanceledException) when (guard.IsCancellationRequested)
            {
                outcome = "hung";
            }
            catch (Exception ex) when (ex is VipException or TimeoutException or IOException or SocketException)
            {
                outcome = "error-" + ex.GetType().Name;
            }
            catch (Exception ex)
            {
                outcome = "unexpected-" + ex.GetType().Name + ": " + ex.Message;
            }

            outcomes.AddOrUpdate(outcome, 1, (_, n) => n + 1);
        }
    }

    internal static async Task WaitUntilServedAsync(VipCluster cluster, IPAddress from)
    {
        await using var client = new VipClient(new VipClientOptions { Vip = cluster.VipEndPoint, LocalAddress = from, TaskTimeout = TaskTimeout });
        var deadline = DateTime.UtcNow.AddSeconds(60);
        Exception? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                await client.RunAsync(new TaskRequest("probe", "echo", [], "", "x"u8.ToArray()));
                return;
            }
            catch (Exception ex) when (ex is VipException or TimeoutException or IOException or SocketException)
            {
                last = ex;
                await Task.Delay(250);
            }
        }

        Assert.Fail($"the system never served a task within 60 s (last error: {last?.Message})\n{cluster.Output()}");
    }

    private static bool CanConnect(IPEndPoint endpoint)
    {
        try
        {
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.Connect(endpoint);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
