namespace Vip.Benchmarks.Compare;

/// <summary>
/// UDP: echoed datagrams per second to an in-process echo backend, direct, through nginx's stream module
/// (socat where nginx or its stream module is absent), and through the VIP box.
/// </summary>
internal sealed class UdpScenario : IScenario
{
    public string Key => "udp";

    public string Title => "UDP: datagrams through a session-keeping proxy to an echo";

    public async Task RunAsync(CompareContext context, Report report, CancellationToken cancellationToken)
    {
        var duration = TimeSpan.FromSeconds(context.Quick ? 2 : 4);
        var row = report.Add(new Row(
            "UDP", $"echo, {UdpLoad.Sessions} sessions × {UdpLoad.Window} in flight, {UdpLoad.PayloadBytes} B each",
            "dgram/s", Better.Higher, PeerName(context), Fmt.Rate));
        var timeouts = new Dictionary<Side, long>();

        await using var scope = context.NewScope();
        var (echo, echoProcess) = await UdpEchoServer.StartAsync(scope, cancellationToken);
        PathUnderTest?[] paths =
        [
            new PathUnderTest(Side.Direct, "direct", echo, echoProcess),
            await Scenarios.TryStartAsync(context, Side.Peer, () => StartPeerAsync(context, scope, echo, cancellationToken), [row]),
            await Scenarios.TryStartAsync(context, Side.Vip, () => scope.VipBoxAsync([echo], udp: true, cancellationToken), [row]),
        ];

        await Scenarios.ForEachRunAsync(context, Key, paths, [row], async (run, path) =>
        {
            var result = await UdpLoad.RunAsync(path.EndPoint, duration, cancellationToken);
            row[path.Side].Add(run, result.DatagramsPerSecond);
            timeouts[path.Side] = timeouts.GetValueOrDefault(path.Side) + result.Timeouts;
            return $"{Fmt.Rate(result.DatagramsPerSecond)} dgram/s, {result.Timeouts} stalled windows";
        }, cancellationToken);

        if (timeouts.Values.Any(t => t > 0))
        {
            report.Note("UDP: windows refilled after a 100 ms stall (loss), over all runs: "
                + string.Join(", ", timeouts.Select(kv => $"{(kv.Key == Side.Peer ? row.PeerName : Scenarios.SideName(kv.Key))} {kv.Value}")) + ".");
        }
    }

    private static string PeerName(CompareContext context) =>
        context.Tools.NginxHasStream ? "nginx stream" : context.Tools.Socat.Installed ? "socat" : "nginx stream";

    private static Task<Proxy> StartPeerAsync(CompareContext context, PeerScope scope, System.Net.IPEndPoint echo, CancellationToken cancellationToken)
    {
        if (context.Tools.NginxHasStream)
        {
            return scope.NginxUdpAsync(echo, cancellationToken);
        }

        if (context.Tools.Socat.Installed)
        {
            return scope.SocatUdpAsync(echo, cancellationToken);
        }

        throw new PeerFailedException(
            "missing: nginx with its stream module (apt-get install nginx libnginx-mod-stream) or socat (apt-get install socat)");
    }
}
