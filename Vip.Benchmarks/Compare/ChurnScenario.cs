namespace Vip.Benchmarks.Compare;

/// <summary>
/// Connection churn: a new TCP connection for every request (<c>redis-benchmark -k 0 -c 50</c>), so the figure is
/// connections set up, relayed once and torn down per second. Direct is shown for reference; the target is against HAProxy.
/// </summary>
internal sealed class ChurnScenario : IScenario
{
    public string Key => "churn";

    public string Title => "connection churn: one connection per request";

    public async Task RunAsync(CompareContext context, Report report, CancellationToken cancellationToken)
    {
        var requests = context.Quick ? 10_000 : 20_000;
        var row = report.Add(new Row("connection churn", "new connection per PING, -k 0 -c 50", "conn/s", Better.Higher, "HAProxy", Fmt.Rate)
            .WithTargets(Target.AtLeastPeer(0.8, "issue 3")));
        foreach (var tool in new[] { context.Tools.RedisServer, context.Tools.RedisBenchmark })
        {
            if (!tool.Installed)
            {
                row.FailAll(tool.Missing);
                return;
            }
        }

        await using var scope = context.NewScope();
        var redisA = await scope.RedisAsync(cancellationToken);
        var redisB = await scope.RedisAsync(cancellationToken);
        PathUnderTest?[] paths =
        [
            new PathUnderTest(Side.Direct, "direct", redisA, null),
            await Scenarios.TryStartAsync(context, Side.Peer, () => scope.HaproxyAsync([redisA, redisB], cancellationToken), [row]),
            await Scenarios.TryStartAsync(context, Side.Vip, () => scope.VipBoxAsync([redisA, redisB], udp: false, cancellationToken), [row]),
        ];

        await Scenarios.WarmUpAsync(paths, path =>
            RedisBench.RunAsync(context.Tools.RedisBenchmark, path.EndPoint, 50, 2_000, 1, keepAlive: false, cancellationToken));

        await Scenarios.ForEachRunAsync(context, Key, paths, [row], async (run, path) =>
        {
            var result = await RedisBench.RunAsync(context.Tools.RedisBenchmark, path.EndPoint, 50, requests, 1, keepAlive: false, cancellationToken);
            row[path.Side].Add(run, result.RequestsPerSecond);
            return $"{Fmt.Rate(result.RequestsPerSecond)} conn/s";
        }, cancellationToken);
    }
}
