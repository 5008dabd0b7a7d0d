namespace Vip.Selection.Policies;

/// <summary>
/// Weighted round robin by stride scheduling: each server has a virtual finish time (its pass) that advances
/// by 2^32 ÷ weight each time it is chosen; the candidate with the smallest pass goes next, ties to the lower
/// index, so equal weights alternate. A server that was not a candidate for a while catches up to the virtual
/// time instead of taking a burst. Arithmetic wraps (differences are compared, never absolute values).
/// </summary>
internal sealed class WeightedRoundRobinPolicy : ISelectionPolicy
{
    private long _virtualTime;

    public void Rank(ref CandidateScan scan) => scan.Run(new PassKey(Volatile.Read(ref _virtualTime), scan.Lives), randomTies: false);

    public void Settle(ref CandidateScan scan, bool commit)
    {
        if (!commit || scan.Filled == 0)
        {
            return;
        }

        ServerLive live = scan.Lives[scan.Top[0].Index];
        long vt = Volatile.Read(ref _virtualTime);
        long pass = Volatile.Read(ref live.Pass);
        long start = pass - vt < 0 ? vt : pass;
        Interlocked.Exchange(ref live.Pass, start + Volatile.Read(ref live.Stride));

        // The virtual time follows the start of the latest choice, never going back.
        while (start - vt > 0)
        {
            long seen = Interlocked.CompareExchange(ref _virtualTime, start, vt);
            if (seen == vt)
            {
                break;
            }

            vt = seen;
        }
    }

    /// <summary>Keeps a long-idle server's pass within reach of the virtual time, so wrapping can never flip its sign.</summary>
    public void OnHeartbeat(ServerLive live)
    {
        long vt = Volatile.Read(ref _virtualTime);
        if (Volatile.Read(ref live.Pass) - vt < 0)
        {
            Volatile.Write(ref live.Pass, vt);
        }
    }

    /// <summary>A new server starts at the current virtual time, not at zero.</summary>
    public void OnRegistered(ServerLive live) => Volatile.Write(ref live.Pass, Volatile.Read(ref _virtualTime));

    private readonly struct PassKey(long virtualTime, ServerLive[] lives) : IRankKey
    {
        public uint Key(int index, uint load)
        {
            long ahead = Volatile.Read(ref lives[index].Pass) - virtualTime;
            return ahead <= 0 ? 0 : ahead >= uint.MaxValue ? uint.MaxValue : (uint)ahead;
        }
    }
}
