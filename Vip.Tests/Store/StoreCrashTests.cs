using System.Diagnostics;
using System.Globalization;
using System.Net;
using Vip.Daemons.Roles;
using Vip.Store;

namespace Vip.Tests.Store;

/// <summary>
/// Crash safety (issue 8): <c>vipd store-torture</c> writes without pause and prints each write the store
/// acknowledged; it is killed with SIGKILL at a random moment; the store must reopen with every acknowledged write,
/// and the LiteDB log must stay bounded. The default suite runs a few rounds; the Long variant runs many.
/// </summary>
public class StoreCrashTests : StoreTestBase
{
    // One batch is at most 64 changes (the torture role's MaxBatchSize); its pages are far below this.
    private const long LogBound = 4 * 1024 * 1024;

    [Test]
    public async Task Acknowledged_writes_survive_sigkill_at_random_moments() => await KillRounds(rounds: 4, seed: 1);

    [Test]
    [Category("Long")]
    public async Task Acknowledged_writes_survive_sigkill_many_times() => await KillRounds(rounds: 60, seed: 2);

    private async Task KillRounds(int rounds, int seed)
    {
        var rng = new Random(seed);
        var acked = new Dictionary<string, long>();      // key → highest acknowledged seq
        long highestIssued = 0;
        long totalAcks = 0;
        for (var round = 0; round < rounds; round++)
        {
            var start = (round + 1) * 10_000_000L;
            using var child = StartTorture(DbPath, start, count: 0);
            var acks = new List<long>();
            var reader = Task.Run(async () =>
            {
                while (await child.StandardOutput.ReadLineAsync() is { } line)
                {
                    if (line.StartsWith("ack ", StringComparison.Ordinal))
                    {
                        lock (acks)
                        {
                            acks.Add(long.Parse(line.AsSpan(4), CultureInfo.InvariantCulture));
                        }
                    }
                }
            });

            // Kill after a random number of acknowledged writes (or a time bound if writing is slow).
            var target = rng.Next(1, 150);
            var waited = Stopwatch.StartNew();
            while (waited.Elapsed < TimeSpan.FromSeconds(20) && !child.HasExited)
            {
                lock (acks)
                {
                    if (acks.Count >= target)
                    {
                        break;
                    }
                }

                await Task.Delay(1);
            }

            if (child.HasExited)
            {
                Assert.Fail($"round {round}: the torture process died by itself: {await child.StandardError.ReadToEndAsync()}");
            }

            await Task.Delay(rng.Next(0, 30)); // land at any point of a batch
            child.Kill();
            await child.WaitForExitAsync();
            await reader;
            Assert.That(acks, Is.Not.Empty, $"round {round}: no write was acknowledged within 20 s");

            foreach (var seq in acks)
            {
                var op = TortureOps.For(seq);
                var key = op.Kind is TortureKind.RemoveClient ? "client:" + op.Key : KeyOf(op);
                acked[key] = Math.Max(acked.GetValueOrDefault(key), seq);
                highestIssued = Math.Max(highestIssued, seq);
            }

            totalAcks += acks.Count;
            var log = LogLength();
            Assert.That(log, Is.LessThanOrEqualTo(LogBound), $"round {round}: LiteDB log is {log} bytes after the kill");

            await using (var store = Open())
            {
                Verify(store.Snapshot, acked, highestIssued, round);
                Assert.That(LogLength(), Is.Zero, "opening folds the log into the data file");
            }
        }

        TestContext.Out.WriteLine($"{rounds} kills, {totalAcks} acknowledged writes, all present; data file {new FileInfo(DbPath).Length} bytes");
    }

    private static string KeyOf(TortureOps op) => op.Kind switch
    {
        TortureKind.Server => "server:" + op.Key,
        TortureKind.Network => "network:" + op.Key,
        _ => "client:" + op.Key,
    };

    // For each key, the store must hold the last acknowledged write or a later one (a later write may have
    // reached the disk without its acknowledgement being printed before the kill).
    private static void Verify(StoreSnapshot s, Dictionary<string, long> acked, long highestIssued, int round)
    {
        foreach (var (key, seq) in acked)
        {
            var op = TortureOps.For(seq);
            var name = key[(key.IndexOf(':', StringComparison.Ordinal) + 1)..];
            IReadOnlyDictionary<string, string>? attrs = key[0] switch
            {
                's' => s.Servers.TryGetValue(name, out var e) ? e.Record.Attributes : null,
                'n' => s.Networks.TryGetValue(IPNetwork.Parse(name), out var r) ? r.Attributes : null,
                _ => s.Clients.TryGetValue(name, out var c) ? c.Attributes : null,
            };

            if (attrs is null)
            {
                // Absent is right only if the last acknowledged write was a removal, or a later removal may have landed.
                var removal = op.Kind == TortureKind.RemoveClient || LaterRemovalExists(name, seq, highestIssued);
                Assert.That(removal, Is.True, $"round {round}: acknowledged write {seq} to {key} is missing");
                continue;
            }

            var stored = long.Parse(attrs["seq"], CultureInfo.InvariantCulture);
            Assert.That(stored, Is.GreaterThanOrEqualTo(seq), $"round {round}: {key} holds write {stored}, but {seq} was acknowledged");
            Assert.That(TortureOps.For(stored).Key, Is.EqualTo(name), $"round {round}: {key} holds a write meant for another key");
        }
    }

    // In-flight writes are at most the torture role's concurrency past the last acknowledgement of its round.
    private static bool LaterRemovalExists(string client, long after, long highestIssued)
    {
        var roundEnd = (after / 10_000_000L + 1) * 10_000_000L;
        var limit = Math.Min(roundEnd, Math.Max(highestIssued, after) + 64);
        for (var seq = after + 1; seq <= limit; seq++)
        {
            var op = TortureOps.For(seq);
            if (op.Kind == TortureKind.RemoveClient && op.Key == client)
            {
                return true;
            }
        }

        return false;
    }

    private long LogLength()
    {
        var log = Path.Combine(Dir, "tier2-log.db");
        return File.Exists(log) ? new FileInfo(log).Length : 0;
    }

    internal static Process StartTorture(string db, long start, long count)
    {
        var vipd = Path.Combine(AppContext.BaseDirectory, "vipd.dll");
        var psi = new ProcessStartInfo(DotnetHost(), ["exec", vipd, "store-torture", "--db", db, "--start", start.ToString(CultureInfo.InvariantCulture), "--count", count.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        return Process.Start(psi) ?? throw new InvalidOperationException("cannot start vipd");
    }

    internal static async Task WaitForLine(Process p, string expected, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (await p.StandardOutput.ReadLineAsync(cts.Token) is { } line)
        {
            if (line == expected)
            {
                return;
            }
        }

        Assert.Fail($"vipd exited before printing '{expected}': {await p.StandardError.ReadToEndAsync()}");
    }

    private static string DotnetHost()
    {
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host))
        {
            return host;
        }

        var self = Environment.ProcessPath;
        return self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
    }
}
