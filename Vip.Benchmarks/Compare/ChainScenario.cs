using System.Globalization;
using System.Net;

namespace Vip.Benchmarks.Compare;

/// <summary>
/// The whole chain: tasks per second and latency through VIP box → tier-1 → tier-2 (submit → REDIRECT), pipelined
/// and with 50 clients waiting for each answer, next to <c>redis-benchmark -c 50</c> through HAProxy in the same run.
/// Needs the vipd roles vip, tier1, tier2, app and keygen, and a client-side load generator (<see cref="ChainLoads"/>);
/// until both exist its rows say "not available" and why.
/// </summary>
internal sealed class ChainScenario : IScenario
{
    private static readonly string[] RequiredRoles = ["vip", "tier1", "tier2", "app", "keygen"];

    public string Key => "chain";

    public string Title => "whole chain: VIP box → tier-1 → tier-2, submit → redirect";

    public async Task RunAsync(CompareContext context, Report report, CancellationToken cancellationToken)
    {
        var duration = TimeSpan.FromSeconds(context.Quick ? 2 : 4);
        var pipelined = report.Add(new Row("whole chain", "tasks/s, 4 connections × 64 in flight", "tasks/s", Better.Higher, "—", Fmt.Rate)
            .WithTargets(Target.AtLeast(100_000, "issue 5")));
        pipelined.Direct.MarkNotApplicable();
        pipelined.Peer.MarkNotApplicable();
        var rate = report.Add(new Row("whole chain", "tasks/s, 50 clients; peer: redis PING via HAProxy", "tasks/s", Better.Higher, "HAProxy", Fmt.Rate)
            .WithoutDirect().WithTargets(Target.AtLeastPeer(0.5, "issue 5")));
        var p50 = report.Add(new Row("whole chain", "p50, 50 clients", "ms", Better.Lower, "HAProxy", Fmt.Ms).WithoutDirect());
        var p99 = report.Add(new Row("whole chain", "p99, 50 clients", "ms", Better.Lower, "HAProxy", Fmt.Ms).WithoutDirect());
        Row[] rows = [pipelined, rate, p50, p99];

        var missing = context.Vipd.Missing(RequiredRoles);
        if (missing.Length > 0)
        {
            Array.ForEach(rows, r => r.Vip.Fail(missing));
            Array.ForEach(rows, r => r.Peer.Fail("not run"));
            context.Log("  " + missing);
            return;
        }

        var load = ChainLoads.Create();
        if (load is null)
        {
            const string why = "not available: no client load generator (ChainLoads.Create)";
            Array.ForEach(rows, r => r.Vip.Fail(why));
            Array.ForEach(rows, r => r.Peer.Fail("not run"));
            context.Log("  " + why);
            return;
        }

        await using var scope = context.NewScope();
        PathUnderTest? peer = null;
        if (context.Tools.RedisServer.Installed && context.Tools.RedisBenchmark.Installed)
        {
            var redisA = await scope.RedisAsync(cancellationToken);
            var redisB = await scope.RedisAsync(cancellationToken);
            peer = await Scenarios.TryStartAsync(context, Side.Peer, () => scope.HaproxyAsync([redisA, redisB], cancellationToken), [rate, p50, p99]);
        }
        else
        {
            var tool = context.Tools.RedisServer.Installed ? context.Tools.RedisBenchmark : context.Tools.RedisServer;
            Array.ForEach([rate, p50, p99], r => r.Peer.Fail(tool.Missing));
        }

        PathUnderTest? chain;
        try
        {
            var vip = await ChainTopology.StartAsync(context, scope, cancellationToken);
            chain = new PathUnderTest(Side.Vip, "chain", vip.EndPoint, vip.Process);
        }
        catch (PeerFailedException ex)
        {
            Array.ForEach(rows, r => r.Vip.Fail(ex.Message));
            context.Log("  chain: " + ex.Message);
            chain = null;
        }

        if (chain is not null)
        {
            // Warm-up, not measured: the first seconds of a fresh chain are JIT and tiered compilation in seven .NET
            // processes and the load generator (the first measured run came out 2–6× below the others without it).
            try
            {
                var warm = TimeSpan.FromSeconds(context.Quick ? 1 : 2);
                await load.RunAsync(chain.EndPoint, new ChainLoadShape(4, 64, warm, "echo"), cancellationToken);
                await load.RunAsync(chain.EndPoint, new ChainLoadShape(50, 1, warm, "echo"), cancellationToken);
            }
            catch (PeerFailedException ex)
            {
                context.Log("  chain warm-up: " + ex.Message);
            }
        }

        await Scenarios.ForEachRunAsync(context, Key, [peer, chain], rows, async (run, path) =>
        {
            if (path.Side == Side.Peer)
            {
                var r = await RedisBench.RunAsync(context.Tools.RedisBenchmark, path.EndPoint, 50, context.Quick ? 50_000 : 100_000, 1, keepAlive: true, cancellationToken);
                rate.Peer.Add(run, r.RequestsPerSecond);
                p50.Peer.Add(run, r.P50Ms);
                p99.Peer.Add(run, r.P99Ms);
                return $"{Fmt.Rate(r.RequestsPerSecond)} req/s";
            }

            var deep = await load.RunAsync(path.EndPoint, new ChainLoadShape(4, 64, duration, "echo"), cancellationToken);
            pipelined.Vip.Add(run, deep.TasksPerSecond);
            var waiting = await load.RunAsync(path.EndPoint, new ChainLoadShape(50, 1, duration, "echo"), cancellationToken);
            rate.Vip.Add(run, waiting.TasksPerSecond);
            p50.Vip.Add(run, waiting.P50Ms);
            p99.Vip.Add(run, waiting.P99Ms);
            return $"pipelined {Fmt.Rate(deep.TasksPerSecond)} tasks/s ({deep.Rejected} rejected), "
                + $"50 clients {Fmt.Rate(waiting.TasksPerSecond)} tasks/s ({waiting.Rejected} rejected)";
        }, cancellationToken);
    }
}

/// <summary>
/// Starts the chain as separate vipd processes on loopback: a ticket key, two tier-2 daemons, two app servers that
/// register with both, two tier-1 daemons over both tier-2s, and a VIP box over both tier-1s.
/// The switches follow the role usages in issues 4 and 5; adjust here if a role's switches differ.
/// </summary>
internal static class ChainTopology
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    // The benchmark's app servers are never claimed, so every EXPECT notice stays in their books until its ticket
    // expires. With the default 30 s lifetime a book (65,536 notices) is full after a few seconds at the chain's rate,
    // and from then on the agent scans the whole book for expired notices on every EXPECT (Vip.Core/Agent
    // ExpectBook.Add → Purge). A 1 s lifetime keeps the books near what real clients, who claim their tickets, would
    // leave there. The redirect path costs the same either way.
    private const string BenchTicketLifetime = "00:00:01";

    public static async Task<Proxy> StartAsync(CompareContext context, PeerScope scope, CancellationToken cancellationToken)
    {
        var dir = Directory.CreateDirectory(Path.Combine(context.TempDirectory, "chain")).FullName;
        var keyFile = Path.Combine(dir, "ticket.key");
        var keygen = await ToolRun.RunAsync(context.Vipd.DotnetPath!, [context.Vipd.DllPath!, "keygen", "--out", keyFile], TimeSpan.FromSeconds(60), cancellationToken);
        if (keygen.ExitCode != 0)
        {
            throw new PeerFailedException($"vipd keygen failed ({keygen.ExitCode}): {keygen.StandardError.Trim()}");
        }

        var tier2 = new List<(IPEndPoint Listen, IPEndPoint Control)>();
        for (var i = 0; i < 2; i++)
        {
            var listen = Loopback.FreeTcpEndPoint();
            var control = Loopback.FreeTcpEndPoint();
            var process = scope.StartVipd($"vipd tier2 #{i}", "tier2",
                [
                    "--listen", listen.Text(), "--control", control.Text(), "--db", Path.Combine(dir, $"tier2-{i}.db"), "--ticket-key-file", keyFile,
                    "--Tier2:TicketLifetime", BenchTicketLifetime,
                ]);
            await Loopback.WaitForTcpAsync(listen, process, StartTimeout, cancellationToken);
            tier2.Add((listen, control));
        }

        var controls = string.Join(',', tier2.Select(t => t.Control.Text()));
        for (var i = 0; i < 2; i++)
        {
            var listen = Loopback.FreeTcpEndPoint();
            var process = scope.StartVipd($"vipd app #{i}", "app",
            [
                "--id", $"bench-app-{i}", "--listen", listen.Text(), "--control", controls,
                "--attr", "pool=bench", "--capacity", "100000", "--ticket-key-file", keyFile,
            ]);
            await Loopback.WaitForTcpAsync(listen, process, StartTimeout, cancellationToken);
        }

        var tier1 = new List<IPEndPoint>();
        var tier2Listens = string.Join(',', tier2.Select(t => t.Listen.Text()));
        for (var i = 0; i < 2; i++)
        {
            var listen = Loopback.FreeTcpEndPoint();
            var process = scope.StartVipd($"vipd tier1 #{i}", "tier1", ["--listen", listen.Text(), "--tier2", tier2Listens]);
            await Loopback.WaitForTcpAsync(listen, process, StartTimeout, cancellationToken);
            tier1.Add(listen);
        }

        var vip = await scope.VipBoxAsync(tier1, udp: false, cancellationToken);
        context.Log(string.Create(CultureInfo.InvariantCulture, $"  chain up: VIP {vip.EndPoint.Text()} → {tier1.Count} tier-1 → {tier2.Count} tier-2 → 2 app servers"));
        return vip;
    }
}
