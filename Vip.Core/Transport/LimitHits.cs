using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.Extensions.Logging;

namespace Vip.Transport;

/// <summary>
/// Counts the hits of a server's limits (docs/reliability.md, "Limits") and logs them at a rate-limited level: per
/// limit, the first hit in each window is a Warning that also says how many hits the previous window kept quiet;
/// the others go to Debug. A flood of bad clients therefore costs a counter increment each, not a log line each.
/// </summary>
internal sealed class LimitHits
{
    private readonly Counter<long> _counter;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly long _windowTicks;
    private readonly ConcurrentDictionary<string, Window> _windows = new(StringComparer.Ordinal);

    /// <param name="counter">The instrument to count on; each hit adds 1 with the tag <c>limit</c>.</param>
    /// <param name="logger">Where Warnings and Debug lines go.</param>
    /// <param name="time">Clock of the windows.</param>
    /// <param name="window">At most one Warning per limit per window (default 10 s).</param>
    public LimitHits(Counter<long> counter, ILogger logger, TimeProvider? time = null, TimeSpan? window = null)
    {
        _counter = counter;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _windowTicks = (long)((window ?? TimeSpan.FromSeconds(10)).TotalSeconds * _time.TimestampFrequency);
    }

    /// <summary>Records one hit of <paramref name="limit"/> (a stable snake_case name) caused by <paramref name="peer"/>.</summary>
    public void Hit(string limit, EndPoint? peer, string detail)
    {
        _counter.Add(1, new KeyValuePair<string, object?>("limit", limit));
        var window = _windows.GetOrAdd(limit, static _ => new Window());
        var now = _time.GetTimestamp();
        long quiet;
        lock (window)
        {
            if (window.Started != 0 && now - window.Started < _windowTicks)
            {
                window.Suppressed++;
                quiet = -1;
            }
            else
            {
                quiet = window.Suppressed;
                window.Started = now;
                window.Suppressed = 0;
            }
        }

        if (quiet >= 0)
        {
            TransportLog.LimitHit(_logger, limit, peer?.ToString() ?? "-", detail, quiet);
        }
        else
        {
            TransportLog.LimitHitQuiet(_logger, limit, peer?.ToString() ?? "-", detail);
        }
    }

    private sealed class Window
    {
        public long Started;
        public long Suppressed;
    }
}

/// <summary>Log messages of the transport area (event ids 5900–5949).</summary>
internal static partial class TransportLog
{
    [LoggerMessage(5900, LogLevel.Warning, "Limit {Limit} hit by {Peer}: {Detail} ({Suppressed} more hits of this limit were logged at Debug since the last warning)")]
    public static partial void LimitHit(ILogger logger, string limit, string peer, string detail, long suppressed);

    [LoggerMessage(5901, LogLevel.Debug, "Limit {Limit} hit by {Peer}: {Detail}")]
    public static partial void LimitHitQuiet(ILogger logger, string limit, string peer, string detail);
}
