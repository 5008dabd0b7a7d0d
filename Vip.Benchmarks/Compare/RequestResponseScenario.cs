namespace Vip.Benchmarks.Compare;

/// <summary>
/// Request/response: <c>redis-benchmark -t ping_mbulk -c 50</c>, without and with pipelining (-P 16), direct to one
/// redis-server, and through HAProxy and the VIP box, each round robin over two redis-servers.
/// </summary>
internal sealed class RequestResponseScenario : IScenario
{
    public const int Clients = 50;
    public const int Pipeline = 16;

    public string Key => "rr";

    public string Title => "request/response: redis-benchmark PING_MBULK, 50 connections";

    /// <summary>The chart's panel names, one per pipelining depth.</summary>
    public static string ModeName(int pipeline) => pipeline == 1 ? "-c 50" : $"-c 50 -P {pipeline}";

    public async Task RunAsync(CompareContext context, Report report, CancellationToken cancellationToken)
    {
        var modes = new[]
        {
            (Pipeline: 1, Requests: context.Quick ? 50_000 : 100_000),
            (Pipeline, Requests: context.Quick ? 500_000 : 1_000_000),
        };
        var rows = new Dictionary<int, (Row Rate, Row P50, Row P99)>();
        foreach (var mode in modes)
        {
            var label = ModeName(mode.Pipeline);
            rows[mode.Pipeline] = (
                report.Add(new Row("request/response", $"PING {label}: rate", "req/s", Better.Higher, "HAProxy", Fmt.Rate)
                    .WithTargets(Target.AtLeastPeer(1.0, "issue 3"))),
                report.Add(new Row("request/response", $"PING {label}: p50", "ms", Better.Lower, "HAProxy", Fmt.Ms)
                    .WithTargets(Target.AtMostPeer(1.0, "issue 3"))),
                report.Add(new Row("request/response", $"PING {label}: p99", "ms", Better.Lower, "HAProxy", Fmt.Ms)
                    .WithTargets(Target.AtMostPeer(1.0, "issue 3"))));
        }

        var allRows = rows.Values.SelectMany(r => new[] { r.Rate, r.P50, r.P99 }).ToList();
        foreach (var tool in new[] { context.Tools.RedisServer, context.Tools.RedisBenchmark })
        {
            if (!tool.Installed)
            {
                allRows.ForEach(r => r.FailAll(tool.Missing));
                return;
            }
        }

        await using var scope = context.NewScope();
        var redisA = await scope.RedisAsync(cancellationToken);
        var redisB = await scope.RedisAsync(cancellationToken);
        PathUnderTest?[] paths =
        [
            new PathUnderTest(Side.Direct, "direct", redisA, null),
            await Scenarios.TryStartAsync(context, Side.Peer, () => scope.HaproxyAsync([redisA, redisB], cancellationToken), allRows),
            await Scenarios.TryStartAsync(context, Side.Vip, () => scope.VipBoxAsync([redisA, redisB], udp: false, cancellationToken), allRows),
        ];

        await Scenarios.WarmUpAsync(paths, path =>
            RedisBench.RunAsync(context.Tools.RedisBenchmark, path.EndPoint, Clients, 20_000, 1, keepAlive: true, cancellationToken));

        foreach (var mode in modes)
        {
            var (rate, p50, p99) = rows[mode.Pipeline];
            await Scenarios.ForEachRunAsync(context, $"{Key} {ModeName(mode.Pipeline)}", paths, [rate, p50, p99], async (run, path) =>
            {
                var result = await RedisBench.RunAsync(
                    context.Tools.RedisBenchmark, path.EndPoint, Clients, mode.Requests, mode.Pipeline, keepAlive: true, cancellationToken);
                rate[path.Side].Add(run, result.RequestsPerSecond);
                p50[path.Side].Add(run, result.P50Ms);
                p99[path.Side].Add(run, result.P99Ms);
                report.AddLatency(ModeName(mode.Pipeline), path.Side, run, result);
                return $"{Fmt.Rate(result.RequestsPerSecond)} req/s, p50 {Fmt.Ms(result.P50Ms)} ms, p99 {Fmt.Ms(result.P99Ms)} ms";
            }, cancellationToken);
        }
    }
}
