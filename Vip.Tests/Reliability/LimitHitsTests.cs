using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Vip.Tests.Reliability.Harness;
using Vip.Transport;

namespace Vip.Tests.Reliability;

/// <summary>Limit hits are all counted, but logged at Warning at most once per limit per window.</summary>
public class LimitHitsTests
{
    [Test]
    public void A_flood_of_hits_is_counted_in_full_but_warned_about_once_per_window()
    {
        using var meter = new Meter("Vip.Tests.LimitHits." + Guid.NewGuid().ToString("N"));
        var counter = meter.CreateCounter<long>("hits");
        using var listener = new LimitMeter(meter.Name, "hits");
        var log = new RecordingLogger();
        var clock = new SteppingClock();
        var hits = new LimitHits(counter, log, clock, TimeSpan.FromSeconds(10));

        for (var i = 0; i < 1000; i++)
        {
            hits.Hit("frame_timeout", null, "slow");
        }

        hits.Hit("too_large", null, "big");
        clock.Advance(TimeSpan.FromSeconds(11));
        hits.Hit("frame_timeout", null, "slow");

        Assert.That(listener["frame_timeout"], Is.EqualTo(1001));
        Assert.That(listener["too_large"], Is.EqualTo(1));
        var warnings = log.Entries.Where(e => e.Level == LogLevel.Warning).ToList();
        Assert.That(warnings, Has.Count.EqualTo(3), "one per limit per window");
        Assert.That(warnings[^1].Message, Does.Contain("999 more hits"), "the next warning says how many were kept quiet");
        Assert.That(log.Entries.Count(e => e.Level == LogLevel.Debug), Is.EqualTo(999));
    }

    private sealed class SteppingClock : TimeProvider
    {
        private long _ticks = 1;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }

    private sealed class RecordingLogger : ILogger
    {
        public List<(LogLevel Level, string Message)> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => Entries.Add((logLevel, formatter(state, exception)));
    }
}
