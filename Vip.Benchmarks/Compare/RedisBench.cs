using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;

namespace Vip.Benchmarks.Compare;

/// <summary>One redis-benchmark result: the rate, the latency summary and the percentile distribution.</summary>
internal sealed record RedisResult(double RequestsPerSecond, double P50Ms, double P99Ms, IReadOnlyList<(double Percentile, double Ms)> Distribution);

/// <summary>Runs <c>redis-benchmark -t ping_mbulk</c> and parses its human output (<c>--precision 3</c>).</summary>
internal static partial class RedisBench
{
    public static async Task<RedisResult> RunAsync(
        Tool redisBenchmark, IPEndPoint target, int clients, int requests, int pipeline, bool keepAlive, CancellationToken cancellationToken)
    {
        var output = await ToolRun.RunAsync(redisBenchmark.Require(),
        [
            "-h", target.Address.ToString(), "-p", target.Port.ToString(CultureInfo.InvariantCulture),
            "-t", "ping_mbulk", "-c", clients.ToString(CultureInfo.InvariantCulture),
            "-n", requests.ToString(CultureInfo.InvariantCulture), "-P", pipeline.ToString(CultureInfo.InvariantCulture),
            "-k", keepAlive ? "1" : "0", "--precision", "3",
        ], TimeSpan.FromSeconds(120), cancellationToken);
        return Parse(output);
    }

    /// <summary>Parses the "Latency by percentile distribution" block and the throughput and latency summaries.</summary>
    internal static RedisResult Parse(ToolOutput output)
    {
        // Progress lines are rewritten in place with '\r'; split on both.
        var lines = output.StandardOutput.Split(['\n', '\r'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var error = lines.Concat(output.StandardError.Split('\n', StringSplitOptions.TrimEntries))
            .FirstOrDefault(l => l.StartsWith("Error", StringComparison.OrdinalIgnoreCase) || l.StartsWith("Could not connect", StringComparison.Ordinal));
        if (output.ExitCode != 0 || error is not null)
        {
            throw new PeerFailedException($"redis-benchmark exited {output.ExitCode}: {error ?? output.StandardError.Trim()}");
        }

        double? rate = null;
        double? p50 = null;
        double? p99 = null;
        var distribution = new List<(double, double)>();
        var inDistribution = false;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.StartsWith("Latency by percentile distribution", StringComparison.Ordinal)
                || line.StartsWith("Cumulative distribution of latencies", StringComparison.Ordinal))
            {
                inDistribution = true;
                continue;
            }

            if (inDistribution)
            {
                var m = PercentileLine().Match(line);
                if (m.Success)
                {
                    distribution.Add((Number(m.Groups[1].Value), Number(m.Groups[2].Value)));
                    continue;
                }

                inDistribution = false;
            }

            var t = ThroughputLine().Match(line);
            if (t.Success)
            {
                rate = Number(t.Groups[1].Value);
            }

            // "avg min p50 p95 p99 max" followed by the values.
            if (line.StartsWith("avg", StringComparison.Ordinal) && line.Contains("p99", StringComparison.Ordinal) && i + 1 < lines.Length)
            {
                var names = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var values = lines[i + 1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (names.Length == values.Length)
                {
                    p50 = Number(values[Array.IndexOf(names, "p50")]);
                    p99 = Number(values[Array.IndexOf(names, "p99")]);
                }
            }
        }

        if (rate is null || p50 is null || p99 is null)
        {
            throw new PeerFailedException("redis-benchmark: no throughput or latency summary in its output");
        }

        return new RedisResult(rate.Value, p50.Value, p99.Value, Monotonic(distribution));
    }

    /// <summary>
    /// Merges the two sections (points at fixed percentiles, points at fixed latencies — samples of one CDF) into
    /// one list ordered by latency with non-decreasing percentiles.
    /// </summary>
    private static List<(double Percentile, double Ms)> Monotonic(List<(double Percentile, double Ms)> points)
    {
        var merged = new List<(double, double)>();
        var highest = -1.0;
        foreach (var (percentile, ms) in points.OrderBy(p => p.Ms).ThenBy(p => p.Percentile))
        {
            if (percentile > highest)
            {
                merged.Add((percentile, ms));
                highest = percentile;
            }
        }

        return merged;
    }

    private static double Number(string text) => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);

    [GeneratedRegex(@"^(\d+(?:\.\d+)?)% <= (\d+(?:\.\d+)?) milliseconds")]
    private static partial Regex PercentileLine();

    [GeneratedRegex(@"throughput summary: (\d+(?:\.\d+)?) requests per second")]
    private static partial Regex ThroughputLine();
}
