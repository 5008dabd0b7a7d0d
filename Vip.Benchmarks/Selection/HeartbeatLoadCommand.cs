using System.Diagnostics;
using System.Globalization;
using System.Text;
using Vip.Benchmarks.Store;
using Vip.Selection;

namespace Vip.Benchmarks.Selection;

/// <summary>
/// <c>Vip.Benchmarks selection-heartbeats [--rounds N] [--window-ms N] [--servers N]</c>: selection latency with and
/// without 10 000 servers heartbeating once a second, side by side in one run. One engine, one heartbeat thread
/// paced to <c>servers</c> heartbeats per second that is switched on and off; each round measures one window
/// without heartbeats and one with (the order alternates), so both see the same machine minutes. Per window:
/// median and 99th percentile of single decisions (wall clock), and the selecting thread's CPU time per decision.
/// Reports the medians over rounds and the median of the per-round ratio with ÷ without.
/// </summary>
public static class HeartbeatLoadCommand
{
    public static int Run(string[] args)
    {
        int rounds = RestartCommand.Option(args, "--rounds", 10);
        int windowMs = RestartCommand.Option(args, "--window-ms", 500);
        int servers = RestartCommand.Option(args, "--servers", 10_000);
        using SelectionEngine engine = Fleet.Build(servers);
        byte[][] ids = [.. Enumerable.Range(0, servers).Select(i => Encoding.UTF8.GetBytes($"app-{i:D5}"))];
        var beating = 0;
        var stop = 0;
        long sent = 0;
        var beater = new Thread(() =>
        {
            var random = new Random(7);
            var clock = Stopwatch.StartNew();
            long due = 0;
            int next = 0;
            while (Volatile.Read(ref stop) == 0)
            {
                if (Volatile.Read(ref beating) == 0)
                {
                    Thread.Sleep(1);
                    clock.Restart();
                    due = 0;
                    continue;
                }

                // Paced to `servers` per second, each server in turn (once a second each): catch up, sleep 1 ms.
                long target = (long)(clock.Elapsed.TotalSeconds * servers);
                for (; due < target; due++)
                {
                    engine.Heartbeat(ids[next], new ServerHeartbeat(random.Next(1000), random.Next(Fleet.Capacity / 10), false));
                    next = (next + 1) % servers;
                    Interlocked.Increment(ref sent);
                }

                Thread.Sleep(1);
            }
        }) { IsBackground = true, Name = "heartbeats" };
        beater.Start();

        // Warm up the decision path (JIT tiers, per-thread scratch) before measuring.
        for (int i = 0; i < 20_000; i++)
        {
            Fleet.Select(engine);
        }

        Console.WriteLine($"{servers} servers, {rounds} rounds of 2 × {windowMs} ms windows; load average {RestartCommand.LoadAverage()}");
        Console.WriteLine("round  heartbeats/s   without: p50 ns  p99 ns  CPU ns/decision   with: p50 ns  p99 ns  CPU ns/decision   p50 ratio");
        var without = new List<Window>();
        var with = new List<Window>();
        var ratios = new List<double>();
        var rates = new List<double>();
        var samples = new long[2_000_000];
        for (int r = 0; r < rounds; r++)
        {
            Window off = default, on = default;
            double rate = 0;
            foreach (bool heartbeats in r % 2 == 0 ? new[] { false, true } : [true, false])
            {
                Volatile.Write(ref beating, heartbeats ? 1 : 0);
                Thread.Sleep(100); // let the stream reach its pace (or stop)
                long sent0 = Interlocked.Read(ref sent);
                var wall = Stopwatch.StartNew();
                Window window = Measure(engine, windowMs, samples);
                if (heartbeats)
                {
                    rate = (Interlocked.Read(ref sent) - sent0) / wall.Elapsed.TotalSeconds;
                    on = window;
                }
                else
                {
                    off = window;
                }
            }

            without.Add(off);
            with.Add(on);
            rates.Add(rate);
            ratios.Add((double)on.P50 / off.P50);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r + 1,5}  {rate,12:F0}   {off.P50,15}  {off.P99,6}  {off.CpuPerDecision,15:F0}   {on.P50,12}  {on.P99,6}  {on.CpuPerDecision,15:F0}   {ratios[^1],9:F2}"));
        }

        Volatile.Write(ref stop, 1);
        beater.Join();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"median without: p50 {Med(without, w => w.P50):F0} ns, p99 {Med(without, w => w.P99):F0} ns, CPU {Med(without, w => w.CpuPerDecision):F0} ns/decision"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"median with {RestartCommand.Median(rates):F0} heartbeats/s: p50 {Med(with, w => w.P50):F0} ns, p99 {Med(with, w => w.P99):F0} ns, CPU {Med(with, w => w.CpuPerDecision):F0} ns/decision"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"median per-round p50 ratio with ÷ without: {RestartCommand.Median(ratios):F2} (CPU ratio {RestartCommand.Median([.. with.Zip(without, (a, b) => a.CpuPerDecision / b.CpuPerDecision)]):F2}); load average {RestartCommand.LoadAverage()}"));
        return 0;
    }

    private static double Med(List<Window> windows, Func<Window, double> pick) => RestartCommand.Median([.. windows.Select(pick)]);

    private static Window Measure(SelectionEngine engine, int windowMs, long[] samples)
    {
        long end = Stopwatch.GetTimestamp() + (long)(windowMs / 1000.0 * Stopwatch.Frequency);
        long cpu0 = ThreadCpuClock.Now();
        int n = 0;
        long t = Stopwatch.GetTimestamp();
        while (t < end && n < samples.Length)
        {
            Fleet.Select(engine);
            long t1 = Stopwatch.GetTimestamp();
            samples[n++] = t1 - t;
            t = t1;
        }

        long cpu = ThreadCpuClock.Now() - cpu0;
        Array.Sort(samples, 0, n);
        double toNs = 1e9 / Stopwatch.Frequency;
        return new Window((long)(samples[n / 2] * toNs), (long)(samples[(int)(n * 0.99)] * toNs), (double)cpu / n);
    }

    private readonly record struct Window(long P50, long P99, double CpuPerDecision);
}
