using System.Net;
using Vip.Client;
using Vip.Protocol;

namespace Vip.Benchmarks.Compare;

/// <summary>The shape of one chain load: how many clients submit at once and how many tasks each keeps in flight.</summary>
/// <param name="Clients">Concurrent client connections to the VIP address.</param>
/// <param name="PipelineDepth">Tasks in flight per connection (1 = wait for each answer).</param>
/// <param name="Duration">How long to submit for (the run is bounded by it).</param>
/// <param name="TaskKind">The task kind submitted (the sample app server's <c>echo</c>).</param>
internal sealed record ChainLoadShape(int Clients, int PipelineDepth, TimeSpan Duration, string TaskKind);

/// <summary>What a chain load measured: tasks answered with a REDIRECT, rejections, and submit→redirect latency.</summary>
internal sealed record ChainLoadResult(long Redirected, long Rejected, TimeSpan Elapsed, double P50Ms, double P99Ms)
{
    public double TasksPerSecond => Redirected / Elapsed.TotalSeconds;
}

/// <summary>Client-side load for the whole-chain scenario: submits tasks to the VIP address, counts the answers.</summary>
internal interface IChainLoad
{
    /// <summary>Submits tasks through <paramref name="vip"/> for <see cref="ChainLoadShape.Duration"/>; must stop by then.</summary>
    Task<ChainLoadResult> RunAsync(IPEndPoint vip, ChainLoadShape shape, CancellationToken cancellationToken);
}

/// <summary>Where the chain scenario gets its load generator.</summary>
internal static class ChainLoads
{
    /// <summary>
    /// The load generator over Vip.Core's pipelined task submission (<see cref="VipLoad"/>). This is the one place to
    /// change to drive the chain differently (another client, other task mixes); the scenario needs nothing else.
    /// </summary>
    public static IChainLoad? Create() => new VipLoadChainLoad();
}

/// <summary>
/// Drives <see cref="VipLoad"/>: each connection keeps <see cref="ChainLoadShape.PipelineDepth"/> TASK frames in flight
/// for the duration; a task counts when its REDIRECT comes back. Clients are spread over a few client ids, and the
/// tasks carry the attribute the chain's app servers have (<c>pool=bench</c>).
/// </summary>
internal sealed class VipLoadChainLoad : IChainLoad
{
    private const int ClientIds = 8;

    public async Task<ChainLoadResult> RunAsync(IPEndPoint vip, ChainLoadShape shape, CancellationToken cancellationToken)
    {
        var tasks = Enumerable.Range(0, ClientIds)
            .Select(i => new TaskRequest($"bench-client-{i}", shape.TaskKind, [new("pool", "bench")], "", "ping"u8.ToArray()))
            .ToArray();
        VipLoadReport report;
        try
        {
            report = await VipLoad.RunAsync(new VipLoadOptions
            {
                Vip = vip,
                Tasks = tasks,
                Connections = shape.Clients,
                Pipeline = shape.PipelineDepth,
                TotalTasks = long.MaxValue / 2, // the duration bounds the run
                Duration = shape.Duration,
            }, cancellationToken);
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or IOException or TimeoutException)
        {
            throw new PeerFailedException($"chain load: {ex.Message}");
        }

        var rejected = report.Rejects.Values.Sum();
        if (report.Redirects == 0)
        {
            var why = rejected > 0
                ? string.Join(", ", report.Rejects.Select(kv => $"{kv.Value} {kv.Key}"))
                : report.Errors.FirstOrDefault() ?? "no answer";
            throw new PeerFailedException($"chain load: no task was redirected ({why})");
        }

        return new ChainLoadResult(report.Redirects, rejected, report.Elapsed, report.P50.TotalMilliseconds, report.P99.TotalMilliseconds);
    }
}
