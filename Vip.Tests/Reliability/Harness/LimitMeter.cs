using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Vip.Tests.Reliability.Harness;

/// <summary>Listens to one counter instrument and tallies its hits by the value of the <c>limit</c> tag.</summary>
internal sealed class LimitMeter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _hits = new();

    public LimitMeter(string meterName, string instrumentName)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == meterName && instrument.Name == instrumentName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "limit" && tag.Value is string limit)
                {
                    _hits.AddOrUpdate(limit, value, (_, n) => n + value);
                }
            }
        });
        _listener.Start();
    }

    /// <summary>Hits of <paramref name="limit"/> counted since this listener started.</summary>
    public long this[string limit] => _hits.GetValueOrDefault(limit);

    public void Dispose() => _listener.Dispose();
}
