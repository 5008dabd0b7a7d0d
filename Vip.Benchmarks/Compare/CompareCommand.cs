using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Vip.Benchmarks.Compare;

/// <summary>
/// <c>Vip.Benchmarks compare</c>: starts HAProxy, nginx, redis, iperf3 and the VIP box on loopback with identical
/// backends, measures every path in the same runs, prints one table with ratios, writes the table, the latency chart
/// and the raw figures to <c>artifacts/compare</c>, and with <c>--write-docs</c> into docs/benchmarks.md.
/// </summary>
internal static class CompareCommand
{
    public const string ChartFileName = "benchmarks-latency.svg";

    public static async Task<int> RunAsync(string[] args)
    {
        if (args is [UdpEchoServer.Switch, var echoEndPoint])
        {
            return await UdpEchoServer.RunAsync(echoEndPoint);
        }

        CompareOptions options;
        try
        {
            options = CompareOptions.Parse(args);
        }
        catch (ArgumentException ex)
        {
            await Console.Error.WriteLineAsync("compare: " + ex.Message);
            await Console.Error.WriteLineAsync(CompareOptions.Usage);
            return 64;
        }

        if (options.Help)
        {
            Console.WriteLine(CompareOptions.Usage);
            return 0;
        }

        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true; // stop the peers in order, then exit
            cancel.Cancel();
        };

        try
        {
            return await RunAsync(options, cancel.Token);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync("compare: interrupted; every peer started has been stopped");
            return 130;
        }
    }

    private static async Task<int> RunAsync(CompareOptions options, CancellationToken cancellationToken)
    {
        using var context = await CompareContext.CreateAsync(options, Console.Out, cancellationToken);
        var started = DateTime.UtcNow;
        context.Log($"compare: {options.Runs} runs per figure{(options.Quick ? " (quick)" : "")}; scenarios: {string.Join(',', CompareOptions.ScenarioKeys.Where(options.Includes))}");
        foreach (var tool in context.Tools.All)
        {
            context.Log($"  {tool.Name,-16} {(tool.Installed ? tool.Path : tool.Missing)}");
        }

        context.Log($"  nginx stream     {(context.Tools.NginxHasStream ? Toolbox.NginxStreamModule : "missing (apt-get install libnginx-mod-stream)")}");
        context.Log($"  vipd             {context.Vipd.DllPath ?? "not built"}; roles: {(context.Vipd.Problem ?? string.Join(' ', context.Vipd.Roles))}");

        var report = new Report(options.Runs);
        foreach (var scenario in Scenarios.All.Where(s => options.Includes(s.Key)))
        {
            context.Log($"== {scenario.Title}");
            var before = report.Rows.Count;
            try
            {
                await scenario.RunAsync(context, report, cancellationToken);
            }
            catch (PeerFailedException ex)
            {
                // A shared backend (redis, iperf3 server) could not start: nothing in this scenario can be measured.
                context.Log($"  {scenario.Key}: FAILED {ex.Message}");
                foreach (var row in report.Rows.Skip(before))
                {
                    row.FailAll("failed: " + ex.Message);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // A harness bug or an environment problem: say so in the table, keep the other scenarios.
                context.Log($"  {scenario.Key}: ERROR {ex}");
                foreach (var row in report.Rows.Skip(before))
                {
                    row.FailAll($"harness error: {ex.GetType().Name}: {ex.Message}");
                }
            }
        }

        var elapsed = DateTime.UtcNow - started;
        Console.WriteLine();
        Console.WriteLine(TableWriter.Text(report));
        foreach (var note in report.Notes)
        {
            Console.WriteLine(note);
        }

        var subtitle = $"median-rate run of {options.Runs}, {started:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores shared, loopback";
        var svg = LatencyChart.Render(report, subtitle);
        var machine = await MachineInfo.MarkdownAsync(context, cancellationToken);
        var tableRegion = TableRegion(report, options, started, elapsed, svg is not null);

        var outDir = options.OutDirectory ?? Path.Combine(context.RepoRoot, "artifacts", "compare");
        Directory.CreateDirectory(outDir);
        await File.WriteAllTextAsync(Path.Combine(outDir, "table.md"), "## Machine\n\n" + machine + "\n## Side by side\n\n" + tableRegion, cancellationToken);
        await File.WriteAllTextAsync(Path.Combine(outDir, "results.json"), RawJson(report, options, started), cancellationToken);
        if (svg is not null)
        {
            await File.WriteAllTextAsync(Path.Combine(outDir, ChartFileName), svg, cancellationToken);
        }

        Console.WriteLine($"Table, chart and raw figures: {outDir}");

        if (options.WriteDocs)
        {
            var docs = Path.Combine(context.RepoRoot, "docs", "benchmarks.md");
            try
            {
                var text = await File.ReadAllTextAsync(docs, cancellationToken);
                text = DocsWriter.Replace(text, new Dictionary<string, string>
                {
                    ["machine"] = machine,
                    ["table"] = tableRegion,
                });
                await File.WriteAllTextAsync(docs, text, cancellationToken);
                if (svg is not null)
                {
                    await File.WriteAllTextAsync(Path.Combine(context.RepoRoot, "docs", ChartFileName), svg, cancellationToken);
                }

                Console.WriteLine($"Rewrote the generated regions of {docs}{(svg is not null ? " and docs/" + ChartFileName : "")}.");
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or UnauthorizedAccessException)
            {
                await Console.Error.WriteLineAsync($"compare: could not update {docs}: {ex.Message}");
                return 1;
            }
        }

        return 0;
    }

    private static string TableRegion(Report report, CompareOptions options, DateTime started, TimeSpan elapsed, bool hasChart)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"Run of {started:yyyy-MM-dd HH:mm} UTC, {options.Runs} runs per figure (median; ratios taken inside each run, then the median), {elapsed.TotalMinutes:0.0} min:");
        sb.AppendLine();
        sb.AppendLine("```sh");
        sb.AppendLine(options.CommandLine);
        sb.AppendLine("```");
        sb.AppendLine();
        sb.Append(TableWriter.Markdown(report));
        if (report.Notes.Count > 0)
        {
            sb.AppendLine();
            foreach (var note in report.Notes)
            {
                sb.AppendLine("- " + note);
            }
        }

        if (hasChart)
        {
            sb.AppendLine();
            sb.AppendLine($"![Request/response latency by percentile, VIP box against HAProxy]({ChartFileName})");
        }

        return sb.ToString();
    }

    private static string RawJson(Report report, CompareOptions options, DateTime started)
    {
        var raw = new
        {
            started,
            options.Runs,
            options.Quick,
            rows = report.Rows.Select(r => new
            {
                r.Scenario,
                r.Metric,
                r.Unit,
                peer = r.PeerName,
                direct = Raw(r.Direct),
                peerRuns = Raw(r.Peer),
                vip = Raw(r.Vip),
                targets = r.TargetText(),
                met = r.Verdict(),
            }),
            notes = report.Notes,
        };
        return JsonSerializer.Serialize(raw, new JsonSerializerOptions { WriteIndented = true });
    }

    private static object Raw(Series s) => new { runs = s.ByRun.ToDictionary(kv => (kv.Key + 1).ToString(CultureInfo.InvariantCulture), kv => kv.Value), median = s.Median, status = s.NotApplicable ? "n/a" : s.Status };
}
