using System.Net;

namespace Vip.Benchmarks.Compare;

/// <summary>One side-by-side scenario: starts its peers, measures every path once per run, fills its rows.</summary>
internal interface IScenario
{
    /// <summary>The key used by <c>--only</c>.</summary>
    string Key { get; }

    string Title { get; }

    Task RunAsync(CompareContext context, Report report, CancellationToken cancellationToken);
}

/// <summary>A path the load goes through: direct to the backend, through the peer, or through the VIP box.</summary>
internal sealed record PathUnderTest(Side Side, string Name, IPEndPoint EndPoint, ChildProcess? Process);

/// <summary>The loop every scenario shares: start the paths, then each run measures every path, in a rotating order.</summary>
internal static class Scenarios
{
    public static IReadOnlyList<IScenario> All { get; } =
    [
        new BulkScenario(),
        new RequestResponseScenario(),
        new ChurnScenario(),
        new UdpScenario(),
        new MemoryScenario(),
        new ChainScenario(),
    ];

    /// <summary>Starts a proxy; if it cannot start (missing, crashed), its column in <paramref name="rows"/> says why.</summary>
    public static async Task<PathUnderTest?> TryStartAsync(
        CompareContext context, Side side, Func<Task<Proxy>> start, IEnumerable<Row> rows)
    {
        try
        {
            var proxy = await start();
            context.Log($"  {proxy.Name} listening on {proxy.EndPoint.Text()} (pid {proxy.Process.Pid})");
            return new PathUnderTest(side, proxy.Name, proxy.EndPoint, proxy.Process);
        }
        catch (PeerFailedException ex)
        {
            context.Log($"  {SideName(side)}: {ex.Message}");
            foreach (var row in rows)
            {
                row[side].Fail(ex.Message);
            }

            return null;
        }
    }

    /// <summary>
    /// For each run, measures each path once; the order rotates from run to run so that drift on a shared
    /// machine does not always favour the same path. A failure voids that one figure and is recorded.
    /// </summary>
    public static async Task ForEachRunAsync(
        CompareContext context,
        string scenario,
        IReadOnlyList<PathUnderTest?> paths,
        IEnumerable<Row> rows,
        Func<int, PathUnderTest, Task<string>> measure,
        CancellationToken cancellationToken,
        int? runs = null)
    {
        var live = paths.OfType<PathUnderTest>().ToList();
        var rowList = rows.ToList();
        var count = runs ?? context.Runs;
        for (var run = 0; run < count; run++)
        {
            for (var i = 0; i < live.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var path = live[(i + run) % live.Count];
                try
                {
                    path.Process?.ThrowIfExited();
                    var shown = await measure(run, path);
                    context.Log($"  {scenario} run {run + 1}/{count} {path.Name}: {shown}");
                }
                catch (PeerFailedException ex)
                {
                    context.Log($"  {scenario} run {run + 1}/{count} {path.Name}: FAILED {ex.Message}");
                    foreach (var row in rowList)
                    {
                        row[path.Side].Fail("failed: " + ex.Message);
                    }
                }
            }
        }
    }

    public static string SideName(Side side) => side switch
    {
        Side.Direct => "direct",
        Side.Peer => "peer",
        _ => "VIP box",
    };

    /// <summary>A warm-up pass over every path, not recorded (JIT and tiering in the VIP box, caches everywhere).</summary>
    public static async Task WarmUpAsync(IReadOnlyList<PathUnderTest?> paths, Func<PathUnderTest, Task> warm)
    {
        foreach (var path in paths.OfType<PathUnderTest>())
        {
            try
            {
                await warm(path);
            }
            catch (PeerFailedException)
            {
                // The measured runs will fail the same way and say so in the table.
            }
        }
    }
}
