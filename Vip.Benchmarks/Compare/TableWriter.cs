using System.Text;

namespace Vip.Benchmarks.Compare;

/// <summary>Renders the report as one table: a plain-text one for the console and a Markdown one for the docs.</summary>
internal static class TableWriter
{
    private static readonly string[] Headers =
        ["Scenario", "Metric", "Direct", "Peer", "Peer figure", "VIP box", "VIP ÷ peer", "VIP ÷ direct", "Target", "Met"];

    public static string Markdown(Report report)
    {
        var sb = new StringBuilder();
        sb.Append("| ").AppendJoin(" | ", Headers).AppendLine(" |");
        sb.Append('|').AppendJoin('|', Headers.Select(h => h is "Scenario" or "Metric" or "Peer" or "Target" or "Met" ? "---" : "---:")).AppendLine("|");
        foreach (var cells in Cells(report))
        {
            sb.Append("| ").AppendJoin(" | ", cells.Select(c => c.Replace("|", "\\|", StringComparison.Ordinal))).AppendLine(" |");
        }

        return sb.ToString();
    }

    public static string Text(Report report)
    {
        var rows = Cells(report).ToList();
        var widths = Headers.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        var sb = new StringBuilder();
        void Line(IReadOnlyList<string> cells)
        {
            for (var i = 0; i < cells.Count; i++)
            {
                sb.Append(i is 2 or 4 or 5 or 6 or 7 ? cells[i].PadLeft(widths[i]) : cells[i].PadRight(widths[i]));
                sb.Append(i == cells.Count - 1 ? "" : "  ");
            }

            sb.AppendLine();
        }

        Line(Headers);
        sb.AppendLine(new string('-', widths.Sum() + (2 * (widths.Length - 1))));
        foreach (var cells in rows)
        {
            Line(cells);
        }

        return sb.ToString();
    }

    private static IEnumerable<string[]> Cells(Report report)
    {
        foreach (var row in report.Rows)
        {
            yield return
            [
                row.Scenario,
                $"{row.Metric} ({row.Unit})",
                row.Cell(Side.Direct, report.Runs),
                row.PeerName,
                row.Cell(Side.Peer, report.Runs),
                row.Cell(Side.Vip, report.Runs),
                row.Ratio(Side.Peer),
                row.Ratio(Side.Direct),
                row.TargetText(),
                row.Verdict(),
            ];
        }
    }
}
