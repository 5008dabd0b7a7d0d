using System.Globalization;
using System.Net;
using System.Text.Json;

namespace Vip.Benchmarks.Compare;

/// <summary>Runs an iperf3 client (one TCP stream) and reads the receiver's throughput from its JSON report.</summary>
internal static class Iperf
{
    /// <summary>Throughput in Gbit/s as the receiver saw it, over <paramref name="seconds"/> after one omitted warm-up second.</summary>
    /// <remarks>
    /// The server serves one test at a time and takes any connection for a test; when it is still cleaning up after
    /// an aborted one, the client is refused or reset. Such a refusal is retried once after a second.
    /// </remarks>
    public static async Task<double> RunAsync(Tool iperf3, IPEndPoint target, int seconds, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var output = await ToolRun.RunAsync(iperf3.Require(),
            [
                "-c", target.Address.ToString(), "-p", target.Port.ToString(CultureInfo.InvariantCulture),
                "-t", seconds.ToString(CultureInfo.InvariantCulture), "-O", "1", "-J",
            ], TimeSpan.FromSeconds(seconds + 30), cancellationToken);
            try
            {
                return Parse(output);
            }
            catch (PeerFailedException ex) when (attempt == 1 && (ex.Message.Contains("control message", StringComparison.Ordinal) || ex.Message.Contains("busy", StringComparison.Ordinal)))
            {
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
        }
    }

    internal static double Parse(ToolOutput output)
    {
        JsonDocument json;
        try
        {
            json = JsonDocument.Parse(output.StandardOutput);
        }
        catch (JsonException)
        {
            throw new PeerFailedException($"iperf3 exited {output.ExitCode} without a JSON report: {First(output.StandardError)}");
        }

        using (json)
        {
            var root = json.RootElement;
            if (root.TryGetProperty("error", out var error))
            {
                throw new PeerFailedException("iperf3: " + error.GetString());
            }

            if (!root.TryGetProperty("end", out var end) || !end.TryGetProperty("sum_received", out var received)
                || !received.TryGetProperty("bits_per_second", out var bps))
            {
                throw new PeerFailedException("iperf3: no end.sum_received.bits_per_second in the report");
            }

            return bps.GetDouble() / 1e9;
        }
    }

    private static string First(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault()?.Trim() ?? "";
}
