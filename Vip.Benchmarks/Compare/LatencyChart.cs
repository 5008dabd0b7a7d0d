using System.Globalization;
using System.Text;

namespace Vip.Benchmarks.Compare;

/// <summary>
/// An SVG chart of the request/response latency distribution (redis-benchmark's percentile output): one panel
/// per pipelining depth; percentile on a "nines" axis (50 %, 90 %, 99 %, 99.9 % …), latency on a log axis so the
/// median and the tail are both readable. VIP box against HAProxy, with the direct connection as a thin reference.
/// </summary>
internal static class LatencyChart
{
    private const double PanelWidth = 440;
    private const double PanelHeight = 300;
    private const double Left = 60;
    private const double Top = 72;
    private const double Gap = 70;
    private const double MaxNines = 5; // 99.999 %

    private static readonly (Side Side, string Color, string Dash, double Width)[] Styles =
    [
        (Side.Vip, "#1f77b4", "", 2.5),
        (Side.Peer, "#ff7f0e", "", 2.5),
        (Side.Direct, "#7f7f7f", "4 3", 1.2),
    ];

    private static readonly double[] PercentileTicks = [0, 50, 90, 99, 99.9, 99.99, 99.999];

    /// <summary>The SVG text, or null when no distribution was measured.</summary>
    public static string? Render(Report report, string subtitle)
    {
        var modes = report.LatencyModes.ToList();
        if (modes.Count == 0)
        {
            return null;
        }

        var width = Left + (modes.Count * (PanelWidth + Gap));
        var height = Top + PanelHeight + 90;
        var sb = new StringBuilder();
        sb.Append(Inv($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:0}\" height=\"{height:0}\" viewBox=\"0 0 {width:0} {height:0}\" font-family=\"sans-serif\" font-size=\"12\">\n"));
        sb.Append(Inv($"<rect width=\"{width:0}\" height=\"{height:0}\" fill=\"white\"/>\n"));
        sb.Append(Inv($"<text x=\"{Left}\" y=\"20\" font-size=\"15\" font-weight=\"bold\">Request/response latency by percentile: redis-benchmark PING_MBULK, 50 connections</text>\n"));
        sb.Append(Inv($"<text x=\"{Left}\" y=\"38\" fill=\"#555\">{Escape(subtitle)}</text>\n"));

        for (var m = 0; m < modes.Count; m++)
        {
            var x0 = Left + (m * (PanelWidth + Gap));
            Panel(sb, report, modes[m], x0);
        }

        // Legend.
        var ly = Top + PanelHeight + 60;
        var lx = Left;
        foreach (var (side, color, dash, w) in Styles)
        {
            var name = report.LatencyNames[side];
            sb.Append(Inv($"<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{lx + 28}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"{w}\" stroke-dasharray=\"{dash}\"/>\n"));
            sb.Append(Inv($"<text x=\"{lx + 34}\" y=\"{ly + 4}\">{Escape(name)}</text>\n"));
            lx += 140;
        }

        sb.Append("</svg>\n");
        return sb.ToString();
    }

    private static void Panel(StringBuilder sb, Report report, string mode, double x0)
    {
        var series = Styles
            .Select(s => (Style: s, Result: report.TypicalLatency(mode, s.Side)))
            .Where(s => s.Result is { Distribution.Count: > 0 })
            .ToList();
        var all = series.SelectMany(s => s.Result!.Distribution.Select(p => p.Ms)).Where(ms => ms > 0).ToList();
        var (yMin, yMax) = all.Count == 0 ? (0.1, 10.0) : (Floor125(all.Min()), Ceil125(all.Max()));
        double X(double percentile) => x0 + (Nines(percentile) / MaxNines * PanelWidth);
        double Y(double ms) => Top + PanelHeight - ((Math.Log10(Math.Max(ms, yMin)) - Math.Log10(yMin)) / (Math.Log10(yMax) - Math.Log10(yMin)) * PanelHeight);

        sb.Append(Inv($"<text x=\"{x0}\" y=\"{Top - 8}\" font-weight=\"bold\">redis-benchmark {Escape(mode)}</text>\n"));
        sb.Append(Inv($"<rect x=\"{x0}\" y=\"{Top}\" width=\"{PanelWidth}\" height=\"{PanelHeight}\" fill=\"none\" stroke=\"#999\"/>\n"));
        foreach (var p in PercentileTicks)
        {
            var x = X(p);
            sb.Append(Inv($"<line x1=\"{x:0.#}\" y1=\"{Top}\" x2=\"{x:0.#}\" y2=\"{Top + PanelHeight}\" stroke=\"#eee\"/>\n"));
            sb.Append(Inv($"<text x=\"{x:0.#}\" y=\"{Top + PanelHeight + 16}\" text-anchor=\"middle\">{p.ToString("0.###", CultureInfo.InvariantCulture)}%</text>\n"));
        }

        foreach (var tick in Ticks125(yMin, yMax))
        {
            var y = Y(tick);
            sb.Append(Inv($"<line x1=\"{x0}\" y1=\"{y:0.#}\" x2=\"{x0 + PanelWidth}\" y2=\"{y:0.#}\" stroke=\"#eee\"/>\n"));
            sb.Append(Inv($"<text x=\"{x0 - 6}\" y=\"{y + 4:0.#}\" text-anchor=\"end\">{tick.ToString("0.###", CultureInfo.InvariantCulture)}</text>\n"));
        }

        sb.Append(Inv($"<text x=\"{x0 + (PanelWidth / 2)}\" y=\"{Top + PanelHeight + 34}\" text-anchor=\"middle\" fill=\"#555\">percentile</text>\n"));
        sb.Append(Inv($"<text transform=\"translate({x0 - 44},{Top + (PanelHeight / 2)}) rotate(-90)\" text-anchor=\"middle\" fill=\"#555\">latency, ms (log)</text>\n"));

        foreach (var (style, result) in series)
        {
            // A step function read as an upper bound: between two listed percentiles, the latency drawn is the
            // later point's (at most that much), as HdrHistogram plots do.
            var points = new StringBuilder();
            var previousPercentile = (double?)null;
            foreach (var (percentile, ms) in result!.Distribution)
            {
                var p = Math.Min(percentile, 100);
                if (previousPercentile is { } prev)
                {
                    points.Append(Inv($"{X(prev):0.#},{Y(ms):0.#} "));
                }

                points.Append(Inv($"{X(p):0.#},{Y(ms):0.#} "));
                previousPercentile = p;
                if (Nines(p) >= MaxNines)
                {
                    break;
                }
            }

            sb.Append(Inv($"<polyline fill=\"none\" stroke=\"{style.Color}\" stroke-width=\"{style.Width}\" stroke-dasharray=\"{style.Dash}\" points=\"{points.ToString().TrimEnd()}\"/>\n"));
        }

        var absent = Styles.Where(s => series.All(x => x.Style.Side != s.Side)).Select(s => report.LatencyNames[s.Side]).ToList();
        if (absent.Count > 0)
        {
            sb.Append(Inv($"<text x=\"{x0 + 8}\" y=\"{Top + 18}\" fill=\"#a00\">not measured: {Escape(string.Join(", ", absent))}</text>\n"));
        }
    }

    /// <summary>−log10(1 − p): 50 % → 0.3, 90 % → 1, 99 % → 2 …; 100 % is drawn at the right edge.</summary>
    private static double Nines(double percentile) =>
        percentile >= 100 ? MaxNines : Math.Min(MaxNines, -Math.Log10(1 - (percentile / 100)));

    private static double Floor125(double v)
    {
        var decade = Math.Pow(10, Math.Floor(Math.Log10(v)));
        return new[] { 5, 2, 1 }.Select(m => m * decade).First(c => c <= v * 1.0000001);
    }

    private static double Ceil125(double v)
    {
        var decade = Math.Pow(10, Math.Floor(Math.Log10(v)));
        return new[] { 1, 2, 5, 10 }.Select(m => m * decade).First(c => c >= v * 0.9999999);
    }

    private static IEnumerable<double> Ticks125(double min, double max)
    {
        for (var decade = Math.Pow(10, Math.Floor(Math.Log10(min))); decade <= max; decade *= 10)
        {
            foreach (var m in new[] { 1, 2, 5 })
            {
                var t = m * decade;
                if (t >= min * 0.9999999 && t <= max * 1.0000001)
                {
                    yield return t;
                }
            }
        }
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private static string Escape(string s) => s.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);
}
