namespace Vip.Benchmarks.Compare;

/// <summary>Bulk throughput: one iperf3 TCP stream direct, through HAProxy, through the VIP box.</summary>
internal sealed class BulkScenario : IScenario
{
    public string Key => "bulk";

    public string Title => "bulk throughput: iperf3, one TCP stream";

    public async Task RunAsync(CompareContext context, Report report, CancellationToken cancellationToken)
    {
        var seconds = context.Quick ? 2 : 4;
        var row = report.Add(new Row("bulk", $"iperf3, 1 stream, {seconds} s", "Gbit/s", Better.Higher, "HAProxy", Fmt.Gbit)
            .WithTargets(Target.AtLeastPeer(1.0, "issue 3"), Target.AtLeastDirect(0.8, "issue 3 (aim)")));
        if (!context.Tools.Iperf3.Installed)
        {
            row.FailAll(context.Tools.Iperf3.Missing);
            return;
        }

        await using var scope = context.NewScope();
        var server = await scope.IperfServerAsync(cancellationToken);
        PathUnderTest?[] paths =
        [
            new PathUnderTest(Side.Direct, "direct", server, null),
            await Scenarios.TryStartAsync(context, Side.Peer, () => scope.HaproxyAsync([server], cancellationToken), [row]),
            // No active health checks on either forwarder here (HAProxy has none configured anywhere): iperf3 takes
            // every connection, a check's too, for a test, and a check arriving between two tests can fail the next.
            await Scenarios.TryStartAsync(context, Side.Vip, () => scope.VipBoxAsync([server], udp: false, cancellationToken, ["--health", "None"]), [row]),
        ];

        // The proxies' readiness probes reached iperf3 as aborted tests; a short unrecorded test per path lets the
        // server get over them (and warms the VIP box's JIT).
        await Scenarios.WarmUpAsync(paths, path => Iperf.RunAsync(context.Tools.Iperf3, path.EndPoint, 1, cancellationToken));

        await Scenarios.ForEachRunAsync(context, Key, paths, [row], async (run, path) =>
        {
            var gbps = await Iperf.RunAsync(context.Tools.Iperf3, path.EndPoint, seconds, cancellationToken);
            row[path.Side].Add(run, gbps);
            return Fmt.Gbit(gbps) + " Gbit/s";
        }, cancellationToken);
    }
}
