using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Vip.Client;
using Vip.Protocol;
using Vip.Tests.Hosting;
using Vip.Tests.Reliability.Harness;

namespace Vip.Tests.Reliability;

/// <summary>
/// Chaos on a whole system of separate vipd processes on loopback hosts (VIP, two tier-1, two tier-2, three app
/// servers): steady load from many clients through VipClient while one tier-1, one tier-2 and one app server are
/// killed with SIGKILL at random moments and restarted. Every task must end explicitly (completed, or an error the
/// client library raised) before its deadline; and each failure must be routed around: the VIP box marks the dead
/// tier-1 down, the tier-1 daemons take the dead tier-2 out of rotation, the tier-2 daemons drop the dead app server.
/// The measured times are printed against the documented target (a dead backend out of rotation in ≤ 3 s) and recorded
/// in docs/reliability.md; only liveness is asserted (a failure not routed around within 20 s fails the test).
/// The short variant runs in the default suite; the two Long ones (<c>dotnet cake --target=Test --long=true</c>) repeat
/// the kills with full recovery between them and heavier load.
/// </summary>
[TestFixture]
[NonParallelizable]
public class ChaosTests
{
    private static readonly TimeSpan TaskTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan Target = TimeSpan.FromSeconds(3);

    // The default-suite variant: the faults follow each other a second or two apart (an app server killed, another
    // frozen, a tier-1 killed, a tier-2 killed), each victim restarted without waiting for the system to be whole again
    // (one tier-1, one tier-2, two app servers down at most, so a path always remains); then the system must become whole. About 25-35 s here, half of it the eight daemons starting.
    [Test]
    [CancelAfter(150_000)]
    public async Task Killing_an_app_server_freezing_another_and_killing_a_tier1_and_a_tier2_under_load_every_task_ends_explicitly()
    {
        var seed = Environment.TickCount;
        var wall = Stopwatch.StartNew();
        await using var run = await ChaosRun.StartAsync(workers: 6, seed);
        var random = run.Random;
        var cluster = run.Cluster;
        var failures = run.Failures;
        var measurements = run.Measurements;
        measurements.Add(WaitSteady(cluster, failures));

        await Task.Delay(TimeSpan.FromMilliseconds(1000 + random.Next(1000)));
        var app = random.Next(3);
        measurements.Add(Measure($"kill app server app{app + 1} → a tier-2 drops it", cluster.App[app], random, restartAfterMs: 300,
            AppDropped(cluster, $"app{app + 1}"), failures));

        // Another app server freezes (SIGSTOP): its sockets stay open, as when its host vanishes, so only heartbeat
        // expiry can take it out. Then it is killed and restarted.
        await Task.Delay(TimeSpan.FromMilliseconds(500 + random.Next(1000)));
        var frozen = (app + 1 + random.Next(2)) % 3;
        var frozenId = $"app{frozen + 1}";
        measurements.Add(Measure($"freeze app server {frozenId} (SIGSTOP) → heartbeat expiry at a tier-2", cluster.App[frozen].Freeze, cluster.App[frozen], random, restartAfterMs: 300,
            since => Earliest([.. cluster.Tier2.Select(p => p.FirstLineAfter(since, $"App server {frozenId} not heard from"))]), failures));

        await Task.Delay(TimeSpan.FromMilliseconds(500 + random.Next(1000)));
        var t1 = random.Next(2);
        measurements.Add(Measure($"kill tier-1 {cluster.Tier1[t1].Name} → VIP marks it down", cluster.Tier1[t1], random, restartAfterMs: 300,
            VipMarksDown(cluster, t1), failures));

        await Task.Delay(TimeSpan.FromMilliseconds(500 + random.Next(1000)));
        var t2 = random.Next(2);

        // Only the tier-1 daemons whose link to it is up can route around it: give the tier-1 just restarted up to 10 s
        // to link, then measure on those linked.
        var linkDeadline = Stopwatch.GetTimestamp() + (10 * Stopwatch.Frequency);
        while (!Enumerable.Range(0, cluster.Tier1.Length).All(i => LinkUp(cluster, i, t2)) && Stopwatch.GetTimestamp() < linkDeadline)
        {
            await Task.Delay(50);
        }

        var linked = Enumerable.Range(0, cluster.Tier1.Length).Where(i => cluster.Tier1[i].IsRunning && LinkUp(cluster, i, t2)).ToArray();
        if (linked.Length == 0)
        {
            failures.Add($"no tier-1 daemon had a link to {cluster.Tier2[t2].Name} before it was killed");
        }

        measurements.Add(Measure($"kill tier-2 {cluster.Tier2[t2].Name} → the {linked.Length} linked tier-1 route around it", cluster.Tier2[t2], random, restartAfterMs: 300,
            Tier1RoutesAround(cluster, t2, linked), failures));

        measurements.Add(WaitSteady(cluster, failures));
        await Task.Delay(TimeSpan.FromSeconds(1));
        await run.StopLoadAsync();
        measurements.Add($"  wall time {wall.Elapsed.TotalSeconds:0.0} s");
        run.Report();
    }

    // One round takes 60-90 s on a 2-core machine (eight daemons starting, three restarts each waited for until the
    // system is whole again), over the default suite's budget: both variants are Long (VIP_LONG=1 dotnet cake --target=Test).
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
        await using var run = await ChaosRun.StartAsync(workers, seed);
        var random = run.Random;
        var cluster = run.Cluster;
        var failures = run.Failures;
        var measurements = run.Measurements;
        for (var round = 0; round < rounds; round++)
        {
            measurements.Add(WaitSteady(cluster, failures));
            await Task.Delay(TimeSpan.FromMilliseconds(1500 + random.Next(2000)));
            var t1 = random.Next(2);
            measurements.Add(Measure($"kill tier-1 {cluster.Tier1[t1].Name} → VIP marks it down", cluster.Tier1[t1], random, restartAfterMs: 500,
                VipMarksDown(cluster, t1), failures));

            measurements.Add(WaitSteady(cluster, failures));
            await Task.Delay(TimeSpan.FromMilliseconds(1000 + random.Next(2000)));
            var t2 = random.Next(2);
            measurements.Add(Measure($"kill tier-2 {cluster.Tier2[t2].Name} → every tier-1 routes around it", cluster.Tier2[t2], random, restartAfterMs: 500,
                Tier1RoutesAround(cluster, t2, [.. Enumerable.Range(0, cluster.Tier1.Length)]), failures));

            measurements.Add(WaitSteady(cluster, failures));
            await Task.Delay(TimeSpan.FromMilliseconds(1000 + random.Next(2000)));
            var app = random.Next(3);
            // The surviving tier-2 daemon(s) must drop the app server (the restarted tier-2 may not have known it).
            measurements.Add(Measure($"kill app server app{app + 1} → tier-2 drops it", cluster.App[app], random, restartAfterMs: 500,
                AppDropped(cluster, $"app{app + 1}"), failures));
        }

        measurements.Add(WaitSteady(cluster, failures));
        await Task.Delay(TimeSpan.FromSeconds(2));
        await run.StopLoadAsync();
        run.Report();
    }

    // The VIP box logs the tier-1 backend down (health checks or failed client connects).
    private static Func<long, long?> VipMarksDown(VipCluster cluster, int t1)
        => since => cluster.Vip.FirstLineAfter(since, $"Backend {cluster.Tier1Hosts[t1].Address}:{VipCluster.Tier1Port} is down");

    // Each of the given tier-1 daemons logs the tier-2 link down or out of rotation; the latest of them counts.
    private static Func<long, long?> Tier1RoutesAround(VipCluster cluster, int t2, int[] tier1)
    {
        var address = $"{cluster.Tier2Hosts[t2].Address}:{VipCluster.Tier2Port}";
        return since => Latest(tier1.Select(i => cluster.Tier1[i]).Select(p => Earliest(p.FirstLineAfter(since, $"Tier-2 {address} is down"), p.FirstLineAfter(since, $"Tier-2 {address} taken out of rotation"))));
    }

    // A tier-2 daemon logs the app server's control link closed, or its heartbeat expired ("not heard from"); the first one counts.
    private static Func<long, long?> AppDropped(VipCluster cluster, string appId)
        => since => Earliest([.. cluster.Tier2.Select(p => Earliest(p.FirstLineAfter(since, $"Control link of app server {appId} closed"), p.FirstLineAfter(since, $"App server {appId} not heard from")))]);

    private static bool LinkUp(VipCluster cluster, int t1, int t2)
        => cluster.Tier1[t1].FirstLineAfter(Math.Max(cluster.Tier1[t1].LastStartedAt, cluster.Tier2[t2].LastStartedAt), $"Tier-2 {cluster.Tier2Hosts[t2].Address}:{VipCluster.Tier2Port} is up") is not null;

    // Kills `victim`, waits until `detected` reports the reaction (or 20 s), restarts it after restartAfterMs..3×restartAfterMs,
    // and returns the measurement.
    private static string Measure(string what, VipdProcess victim, Random random, int restartAfterMs, Func<long, long?> detected, List<string> failures)
        => Measure(what, victim.Kill, victim, random, restartAfterMs, detected, failures);

    // The same with another fault than SIGKILL (the victim is killed, if still running, before its restart).
    private static string Measure(string what, Action fault, VipdProcess victim, Random random, int restartAfterMs, Func<long, long?> detected, List<string> failures)
    {
        var killedAt = Stopwatch.GetTimestamp();
        fault();
        long? at = null;
        var deadline = Stopwatch.GetTimestamp() + (20 * Stopwatch.Frequency);
        while (at is null && Stopwatch.GetTimestamp() < deadline)
        {
            Thread.Sleep(20);
            at = detected(killedAt);
        }

        Thread.Sleep(restartAfterMs + random.Next(2 * restartAfterMs));
        victim.Kill();
        victim.Start();
        if (at is null)
        {
            failures.Add($"{what}: not routed around within 20 s");
            return $"{what}: NOT detected within 20 s";
        }

        var took = Stopwatch.GetElapsedTime(killedAt, at.Value);
        return $"{what}: {took.TotalMilliseconds:0} ms (target ≤ {Target.TotalMilliseconds:0} ms: {(took <= Target ? "met" : "MISSED")})";
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

    // One chaos run: the cluster started and serving, workers submitting tasks until StopLoadAsync, and the findings.
    private sealed class ChaosRun : IAsyncDisposable
    {
        private readonly ConcurrentDictionary<string, int> _outcomes = new();
        private readonly CancellationTokenSource _stop = new();
        private Task[] _load = [];
        private int _completed;

        private ChaosRun(VipCluster cluster, int seed)
        {
            Cluster = cluster;
            Random = new Random(seed);
        }

        public VipCluster Cluster { get; }

        public Random Random { get; }

        public List<string> Failures { get; } = [];

        public List<string> Measurements { get; } = [];

        public static async Task<ChaosRun> StartAsync(int workers, int seed)
        {
            var missing = VipCluster.MissingRole();
            if (missing is not null)
            {
                var message = $"SKIPPED — this build of vipd has no '{missing}' role yet, so the chaos test did NOT run";
                TestContext.Progress.WriteLine("!!! " + message);
                Assert.Ignore(message);
            }

            TestContext.Out.WriteLine($"chaos seed {seed} (rerun with this seed to repeat the kill moments), {workers} workers");
            var hosts = new LoopbackHosts();
            var cluster = new VipCluster(_ => new ClusterHost(hosts.Next(), null), trustedProxies: "127.0.0.0/8");
            var run = new ChaosRun(cluster, seed);
            try
            {
                var started = Stopwatch.GetTimestamp();
                cluster.Start(CanConnect, TimeSpan.FromSeconds(60));
                var clientAddresses = Enumerable.Range(0, 4).Select(_ => hosts.Next()).ToArray();
                await WaitUntilServedAsync(cluster, clientAddresses[0]);
                run.Measurements.Add($"  eight daemons started and serving after {Stopwatch.GetElapsedTime(started).TotalMilliseconds:0} ms");
                run._load = [.. Enumerable.Range(0, workers).Select(w => Task.Run(() => WorkerAsync(cluster, clientAddresses[w % clientAddresses.Length], w, run._outcomes, () => Interlocked.Increment(ref run._completed), run._stop.Token)))];
                return run;
            }
            catch
            {
                await run.DisposeAsync();
                throw;
            }
        }

        public async Task StopLoadAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_load);
        }

        // Prints the measurements and outcomes, then asserts: no task hung or failed with an undocumented error, tasks
        // completed, every failure was routed around and the system became whole again.
        public void Report()
        {
            foreach (var m in Measurements)
            {
                TestContext.Out.WriteLine(m);
            }

            var summary = string.Join(", ", _outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key}={o.Value}"));
            TestContext.Out.WriteLine($"tasks: {_outcomes.Values.Sum()} submitted: {summary}");
            Assert.Multiple(() =>
            {
                Assert.That(_outcomes.GetValueOrDefault("hung"), Is.Zero, $"tasks hung past their deadline ({summary})\n{Cluster.Output()}");
                Assert.That(_outcomes.Keys.Where(k => k.StartsWith("unexpected", StringComparison.Ordinal)), Is.Empty, $"tasks failed with an undocumented error ({summary})");
                Assert.That(_completed, Is.GreaterThan(0), "no task completed");
                Assert.That(Failures, Is.Empty, string.Join("\n", Failures) + "\n" + Cluster.Output());
            });
        }

        public async ValueTask DisposeAsync()
        {
            if (!_stop.IsCancellationRequested)
            {
                await _stop.CancelAsync();
                await Task.WhenAll(_load).WaitAsync(TimeSpan.FromSeconds(30));
            }

            Cluster.Dispose();
            _stop.Dispose();
        }
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
