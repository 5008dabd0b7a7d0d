using System.Net;

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
    /// EXTENSION POINT. Returns the load generator over Vip.Core's pipelined task submission
    /// (the client library of issue 5), or null while that client does not exist yet — the chain scenario then
    /// reports "not available" instead of a figure. To wire it: implement <see cref="IChainLoad"/> with the
    /// client's pipelined submit (one client per connection, <see cref="ChainLoadShape.PipelineDepth"/> tasks in
    /// flight each, latency per task from submit to REDIRECT) and return it here. Nothing else in the harness changes.
    /// </summary>
    public static IChainLoad? Create() => null;
}
