using System.Numerics;

namespace Vip.Client;

/// <summary>
/// A fixed-size log-linear histogram of latencies in microseconds: exact below 1,024 µs, then 512 buckets per
/// power of two (≤ 0.2 % error). Recording allocates nothing; not thread-safe (one per load connection, then merged).
/// </summary>
internal sealed class LatencyHistogram
{
    private const int Linear = 1024;
    private const int SubBuckets = 512;
    private const int MaxShift = 30;
    private readonly long[] _counts = new long[Linear + MaxShift * SubBuckets];
    private long _max;
    private double _sum;

    public long Count { get; private set; }

    public void Record(long microseconds)
    {
        if (microseconds < 0)
        {
            microseconds = 0;
        }

        _counts[Index(microseconds)]++;
        Count++;
        _sum += microseconds;
        if (microseconds > _max)
        {
            _max = microseconds;
        }
    }

    public void Merge(LatencyHistogram other)
    {
        for (var i = 0; i < _counts.Length; i++)
        {
            _counts[i] += other._counts[i];
        }

        Count += other.Count;
        _sum += other._sum;
        _max = Math.Max(_max, other._max);
    }

    public double MeanMicroseconds => Count == 0 ? 0 : _sum / Count;

    public long MaxMicroseconds => _max;

    /// <summary>The value at quantile <paramref name="q"/> (0–1), in microseconds.</summary>
    public long Percentile(double q)
    {
        if (Count == 0)
        {
            return 0;
        }

        var rank = (long)Math.Ceiling(q * Count);
        rank = Math.Clamp(rank, 1, Count);
        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                return Math.Min(ValueAt(i), _max);
            }
        }

        return _max;
    }

    private static int Index(long us)
    {
        if (us < Linear)
        {
            return (int)us;
        }

        var shift = 63 - BitOperations.LeadingZeroCount((ulong)us) - 9; // (us >> shift) is in [512, 1024)
        if (shift > MaxShift)
        {
            return Linear + MaxShift * SubBuckets - 1;
        }

        return Linear + (shift - 1) * SubBuckets + (int)((us >> shift) - SubBuckets);
    }

    private static long ValueAt(int index)
    {
        if (index < Linear)
        {
            return index;
        }

        var shift = (index - Linear) / SubBuckets + 1;
        var sub = (index - Linear) % SubBuckets + SubBuckets;
        return ((long)sub << shift) + (1L << shift) - 1; // upper edge of the bucket
    }
}
