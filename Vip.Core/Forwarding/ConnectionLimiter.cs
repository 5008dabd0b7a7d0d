using Vip.Protocol;

namespace Vip.Forwarding;

/// <summary>Why a connection was refused by <see cref="ConnectionLimiter"/>.</summary>
internal enum LimitVerdict
{
    Admitted,
    TotalLimit,
    SourceLimit,
}

/// <summary>Counts live connections in total and per client IP address, and admits new ones under the caps.</summary>
internal sealed class ConnectionLimiter
{
    private readonly object _gate = new();
    private readonly Dictionary<WireEndpoint, int> _perSource = [];
    private int _total;

    public int Total => Volatile.Read(ref _total);

    /// <summary>Admits a connection from <paramref name="source"/> (port ignored) if both caps allow it.</summary>
    /// <param name="source">The client address.</param>
    /// <param name="maxTotal">Cap on all connections.</param>
    /// <param name="maxPerSource">Cap per address; 0 for none.</param>
    public LimitVerdict TryAcquire(WireEndpoint source, int maxTotal, int maxPerSource)
    {
        var key = source.WithPort(0);
        lock (_gate)
        {
            if (_total >= maxTotal)
            {
                return LimitVerdict.TotalLimit;
            }

            _perSource.TryGetValue(key, out var count);
            if (maxPerSource > 0 && count >= maxPerSource)
            {
                return LimitVerdict.SourceLimit;
            }

            _perSource[key] = count + 1;
            _total++;
            return LimitVerdict.Admitted;
        }
    }

    /// <summary>Releases a connection admitted by <see cref="TryAcquire"/>.</summary>
    public void Release(WireEndpoint source)
    {
        var key = source.WithPort(0);
        lock (_gate)
        {
            _total--;
            if (_perSource.TryGetValue(key, out var count))
            {
                if (count <= 1)
                {
                    _perSource.Remove(key);
                }
                else
                {
                    _perSource[key] = count - 1;
                }
            }
        }
    }
}
