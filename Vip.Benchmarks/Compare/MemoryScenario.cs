using System.Globalization;

namespace Vip.Benchmarks.Compare;

/// <summary>
/// Memory: resident set size of the forwarder holding many idle relayed connections (each proven to reach a redis
/// backend with one PING), against its own baseline after a warm-up. HAProxy vs the VIP box, each freshly started.
/// </summary>
/// <remarks>
/// Why 9,500 and not 10,000: a forwarder needs two descriptors per relayed connection, and this machine's hard
/// open-file limit is 20,000 (not raisable here), so 10,000 connections would not fit in any forwarder process.
/// </remarks>
internal sealed class MemoryScenario : IScenario
{
    public const int Connections = 9_500;
    private const int WarmUpConnections = 200;
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(2);

    public string Key => "memory";

    public string Title => $"memory: resident set with {Connections:N0} idle connections";

    public async Task RunAsync(CompareContext context, Report report, CancellationToken cancellationToken)
    {
        var total = report.Add(new Row("memory", $"RSS holding {Connections:N0} idle connections", "MiB", Better.Lower, "HAProxy", Fmt.MiB)
            .WithoutDirect());
        var perConnection = report.Add(new Row("memory", "RSS per idle connection, over warm baseline", "KiB", Better.Lower, "HAProxy", Fmt.KiB)
            .WithoutDirect());
        Row[] rows = [total, perConnection];
        foreach (var tool in new[] { context.Tools.RedisServer })
        {
            if (!tool.Installed)
            {
                Array.ForEach(rows, r => r.FailAll(tool.Missing));
                return;
            }
        }

        if (OpenFileLimit() is { } limit && limit < Connections + 1000)
        {
            Array.ForEach(rows, r => r.FailAll($"the harness may open only {limit} files; it needs {Connections + 1000}"));
            return;
        }

        // Memory is quiet compared with rates: three runs are plenty.
        var runs = Math.Min(context.Runs, 3);
        Array.ForEach(rows, r => r.Runs = runs);
        var sides = new[] { Side.Peer, Side.Vip };
        for (var run = 0; run < runs; run++)
        {
            for (var i = 0; i < sides.Length; i++)
            {
                var side = sides[(i + run) % sides.Length];
                if (rows.Any(r => r[side].Status is { } s && s.StartsWith("missing", StringComparison.Ordinal)))
                {
                    continue; // already reported as missing; no point starting it again
                }

                await using var scope = context.NewScope();
                var redisA = await scope.RedisAsync(cancellationToken);
                var redisB = await scope.RedisAsync(cancellationToken);
                var path = await Scenarios.TryStartAsync(context, side, () => side == Side.Peer
                    ? scope.HaproxyAsync([redisA, redisB], cancellationToken, maxConnections: Connections + 100, idleTimeout: TimeSpan.FromMinutes(5))
                    : scope.VipBoxAsync([redisA, redisB], udp: false, cancellationToken,
                        ["--max-connections", (Connections + 100).ToString(CultureInfo.InvariantCulture)]), rows);
                if (path is null)
                {
                    continue;
                }

                try
                {
                    using (await IdleConnections.OpenAsync(path.EndPoint, WarmUpConnections, cancellationToken))
                    {
                    }

                    await Task.Delay(Settle, cancellationToken);
                    var baseline = path.Process!.ResidentBytes();
                    using var idle = await IdleConnections.OpenAsync(path.EndPoint, Connections, cancellationToken);
                    await Task.Delay(Settle, cancellationToken);
                    path.Process.ThrowIfExited();
                    var held = path.Process.ResidentBytes();
                    total[side].Add(run, held / 1048576.0);
                    perConnection[side].Add(run, Math.Max(0, held - baseline) / 1024.0 / Connections);
                    context.Log($"  memory run {run + 1}/{runs} {path.Name}: baseline {Fmt.MiB(baseline / 1048576.0)} MiB, "
                        + $"with {Connections:N0} idle {Fmt.MiB(held / 1048576.0)} MiB");
                }
                catch (PeerFailedException ex)
                {
                    context.Log($"  memory run {run + 1}/{runs} {path.Name}: FAILED {ex.Message}");
                    Array.ForEach(rows, r => r[side].Fail("failed: " + ex.Message));
                }
            }
        }
    }

    /// <summary>The soft open-file limit of this process, from /proc/self/limits.</summary>
    private static long? OpenFileLimit()
    {
        foreach (var line in File.ReadLines("/proc/self/limits"))
        {
            if (line.StartsWith("Max open files", StringComparison.Ordinal))
            {
                var fields = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return long.TryParse(fields[0], out var soft) ? soft : null;
            }
        }

        return null;
    }
}
