namespace Vip.Benchmarks.Compare;

/// <summary>Everything one compare run measured: the table rows, latency distributions for the chart, notes.</summary>
internal sealed class Report(int runs)
{
    private readonly List<Row> _rows = [];
    private readonly List<string> _notes = [];
    private readonly Dictionary<(string Mode, Side Side), List<(int Run, RedisResult Result)>> _latency = [];

    public int Runs { get; } = runs;

    public IReadOnlyList<Row> Rows => _rows;

    public IReadOnlyList<string> Notes => _notes;

    /// <summary>Peer names per side for the chart legend ("HAProxy"); the VIP box is always "VIP box".</summary>
    public Dictionary<Side, string> LatencyNames { get; } = new() { [Side.Direct] = "direct", [Side.Peer] = "HAProxy", [Side.Vip] = "VIP box" };

    public Row Add(Row row)
    {
        _rows.Add(row);
        return row;
    }

    public void Note(string note) => _notes.Add(note);

    public void AddLatency(string mode, Side side, int run, RedisResult result)
    {
        if (!_latency.TryGetValue((mode, side), out var list))
        {
            _latency[(mode, side)] = list = [];
        }

        list.Add((run, result));
    }

    /// <summary>Modes with latency distributions, in the order they were measured.</summary>
    public IEnumerable<string> LatencyModes => _latency.Keys.Select(k => k.Mode).Distinct();

    /// <summary>The distribution of the run whose rate was the median for that side, so the chart shows a typical run.</summary>
    public RedisResult? TypicalLatency(string mode, Side side)
    {
        if (!_latency.TryGetValue((mode, side), out var list) || list.Count == 0)
        {
            return null;
        }

        var sorted = list.OrderBy(x => x.Result.RequestsPerSecond).ToList();
        return sorted[(sorted.Count - 1) / 2].Result;
    }
}
