using System.Globalization;

namespace Vip.Benchmarks.Compare;

/// <summary>Which way a metric improves.</summary>
internal enum Better
{
    Higher,
    Lower,
}

/// <summary>The three columns of a row: the direct path, the peer (HAProxy, nginx, …), and the VIP box.</summary>
internal enum Side
{
    Direct,
    Peer,
    Vip,
}

/// <summary>One figure measured once per run; the table shows the median of the runs that produced it.</summary>
internal sealed class Series
{
    private readonly SortedDictionary<int, double> _byRun = [];

    /// <summary>Why some or all runs have no figure (missing peer, failure), or null.</summary>
    public string? Status { get; private set; }

    /// <summary>Shown as "—": the metric has no such column (e.g. memory of a direct connection).</summary>
    public bool NotApplicable { get; private set; }

    public IReadOnlyDictionary<int, double> ByRun => _byRun;

    public bool HasValues => _byRun.Count > 0;

    public double? Median => HasValues ? Stats.Median(_byRun.Values) : null;

    public void Add(int run, double value)
    {
        if (double.IsFinite(value))
        {
            _byRun[run] = value;
        }
    }

    /// <summary>Records why a figure is absent; the first reason is kept (later ones are usually consequences).</summary>
    public void Fail(string why) => Status ??= why;

    public void MarkNotApplicable() => NotApplicable = true;

    /// <summary>Median over runs of <paramref name="numerator"/>/<paramref name="denominator"/>, each ratio inside one run.</summary>
    public static double? MedianRatio(Series numerator, Series denominator)
    {
        var ratios = numerator._byRun
            .Where(kv => denominator._byRun.TryGetValue(kv.Key, out var d) && d > 0)
            .Select(kv => kv.Value / denominator._byRun[kv.Key])
            .ToList();
        return ratios.Count > 0 ? Stats.Median(ratios) : null;
    }
}

/// <summary>What a target is measured against.</summary>
internal enum TargetBasis
{
    Peer,
    Direct,
    Absolute,
}

/// <summary>A target from the issues: a ratio against the peer or the direct path, or an absolute floor.</summary>
internal sealed record Target(TargetBasis Basis, double Value, Better Better, string Source)
{
    public static Target AtLeastPeer(double ratio, string source) => new(TargetBasis.Peer, ratio, Better.Higher, source);

    public static Target AtMostPeer(double ratio, string source) => new(TargetBasis.Peer, ratio, Better.Lower, source);

    public static Target AtLeastDirect(double ratio, string source) => new(TargetBasis.Direct, ratio, Better.Higher, source);

    public static Target AtLeast(double value, string source) => new(TargetBasis.Absolute, value, Better.Higher, source);

    public string Describe(Row row) => Basis switch
    {
        TargetBasis.Absolute => $"{(Better == Better.Higher ? "≥" : "≤")} {row.Format(Value)} {row.Unit}",
        TargetBasis.Direct => $"{(Better == Better.Higher ? "≥" : "≤")} {Value:0.0#}× direct",
        _ => $"{(Better == Better.Higher ? "≥" : "≤")} {Value:0.0#}× {row.PeerName}",
    };

    /// <summary>True/false when the VIP figure and its reference exist; null when it cannot be judged yet.</summary>
    public bool? Met(Row row)
    {
        double? actual = Basis switch
        {
            TargetBasis.Absolute => row.Vip.Median,
            TargetBasis.Direct => Series.MedianRatio(row.Vip, row.Direct),
            _ => Series.MedianRatio(row.Vip, row.Peer),
        };
        if (actual is not { } a)
        {
            return null;
        }

        return Better == Better.Higher ? a >= Value : a <= Value;
    }
}

/// <summary>One line of the table: a metric of a scenario, its three columns, ratios and targets.</summary>
internal sealed class Row(string scenario, string metric, string unit, Better better, string peerName, Func<double, string> format)
{
    public string Scenario { get; } = scenario;

    public string Metric { get; } = metric;

    public string Unit { get; } = unit;

    public Better Better { get; } = better;

    public string PeerName { get; set; } = peerName;

    public Func<double, string> Format { get; } = format;

    public Series Direct { get; } = new();

    public Series Peer { get; } = new();

    public Series Vip { get; } = new();

    public List<Target> Targets { get; } = [];

    /// <summary>Runs this row takes, when fewer than the report's (memory is quiet: three are enough).</summary>
    public int? Runs { get; set; }

    public Series this[Side side] => side switch
    {
        Side.Direct => Direct,
        Side.Peer => Peer,
        _ => Vip,
    };

    public Row WithTargets(params Target[] targets)
    {
        Targets.AddRange(targets);
        return this;
    }

    public Row WithoutDirect()
    {
        Direct.MarkNotApplicable();
        return this;
    }

    /// <summary>Marks every column that has no figure yet with <paramref name="why"/>.</summary>
    public void FailAll(string why)
    {
        foreach (var side in Enum.GetValues<Side>())
        {
            if (!this[side].HasValues && !this[side].NotApplicable)
            {
                this[side].Fail(why);
            }
        }
    }

    public string Cell(Side side, int runs)
    {
        var series = this[side];
        if (series.NotApplicable)
        {
            return "—";
        }

        if (series.Median is not { } median)
        {
            return series.Status ?? "not measured";
        }

        var text = Format(median);
        runs = Runs ?? runs;
        return series.ByRun.Count < runs ? $"{text} ({series.ByRun.Count}/{runs} runs)" : text;
    }

    public string Ratio(Side against) =>
        Series.MedianRatio(Vip, this[against]) is { } r ? r.ToString("0.00", CultureInfo.InvariantCulture) + "×" : "—";

    public string TargetText() => Targets.Count == 0 ? "—" : string.Join("; ", Targets.Select(t => t.Describe(this)));

    public string Verdict()
    {
        var verdicts = Targets.Select(t => t.Met(this)).ToList();
        return verdicts.All(v => v is null)
            ? "—"
            : string.Join("; ", verdicts.Select(v => v switch
            {
                true => "met",
                false => "NOT met",
                null => "not judged",
            }));
    }
}

/// <summary>Medians and percentiles over small samples.</summary>
internal static class Stats
{
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            throw new InvalidOperationException("median of nothing");
        }

        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>The value at <paramref name="percentile"/> (0..100) of an ascending array, nearest rank.</summary>
    public static double Percentile(double[] ascending, double percentile)
    {
        if (ascending.Length == 0)
        {
            return double.NaN;
        }

        var rank = (int)Math.Ceiling(percentile / 100.0 * ascending.Length);
        return ascending[Math.Clamp(rank - 1, 0, ascending.Length - 1)];
    }
}

/// <summary>Number formats for the table.</summary>
internal static class Fmt
{
    public static string Rate(double perSecond) => perSecond switch
    {
        >= 1_000_000 => (perSecond / 1_000_000).ToString("0.00", CultureInfo.InvariantCulture) + "M",
        >= 10_000 => (perSecond / 1000).ToString("0.0", CultureInfo.InvariantCulture) + "k",
        _ => perSecond.ToString("0", CultureInfo.InvariantCulture),
    };

    public static string Gbit(double gbps) => gbps.ToString("0.00", CultureInfo.InvariantCulture);

    public static string Ms(double ms) => ms.ToString(ms < 10 ? "0.000" : "0.0", CultureInfo.InvariantCulture);

    public static string MiB(double mib) => mib.ToString("0.0", CultureInfo.InvariantCulture);

    public static string KiB(double kib) => kib.ToString("0.0", CultureInfo.InvariantCulture);
}
