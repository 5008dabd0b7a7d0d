using System.Runtime.CompilerServices;
using Vip.Selection.Policies;

namespace Vip.Selection;

/// <summary>
/// One thread's best least-load candidates for one query (a snapshot, the bitmaps whose AND is the candidate
/// set, and the preferences), kept in order between decisions and brought up to date from the engine's
/// <see cref="ChangeLog"/>: a decision then costs the changes since the last one (usually the ticket it
/// counted itself and a few heartbeats) instead of a walk over every candidate. Holds up to
/// <see cref="Capacity"/> entries; a walk rebuilds it when it runs short, when the log has moved on too far, or
/// when the query is new.
/// </summary>
internal sealed class ShortList
{
    /// <summary>Most entries kept.</summary>
    public const int Capacity = 64;

    // Sorted composite keys (score, load key, tie-breaker: as the walk composes them), one spare for insertion.
    private readonly ulong[] _entries = new ulong[Capacity + 1];
    private ulong[][] _parts = new ulong[4][];
    private Probe[] _probes = new Probe[4];
    private int _partCount;
    private int _probeCount;

    /// <summary>The snapshot the list belongs to (null: unused).</summary>
    public ServerSet? Set { get; private set; }

    /// <summary>The hash of the query, for the per-thread table.</summary>
    public int Hash { get; private set; }

    /// <summary>The candidate bitmap (AND of the parts), as of the last rebuild.</summary>
    public ulong[] Mask { get; private set; } = [];

    /// <summary>Entries in use.</summary>
    public int Count { get; private set; }

    /// <summary>Every candidate whose composite key is below this is in the list; ulong.MaxValue: every candidate is.</summary>
    public ulong Bound { get; private set; }

    /// <summary>The tie-breaker the entries were composed with (fixed until the next rebuild).</summary>
    public TieMap Tie { get; private set; }

    /// <summary>The next change-log position to read.</summary>
    public long LogPosition { get; set; }

    /// <summary>Whether the last walk passed over a matching server because it was full.</summary>
    public bool SawFull { get; private set; }

    /// <summary>The entry at a position (0 is the best).</summary>
    public ulong this[int position] => _entries[position];

    /// <summary>The hash of a query, for finding its list.</summary>
    public static int HashOf(ServerSet set, ReadOnlySpan<ulong[]> parts, ReadOnlySpan<Probe> probes)
    {
        var hash = default(HashCode);
        hash.Add(RuntimeHelpers.GetHashCode(set));
        foreach (ulong[] part in parts)
        {
            hash.Add(RuntimeHelpers.GetHashCode(part));
        }

        foreach (ref readonly Probe p in probes)
        {
            hash.Add(p.IdentityHash());
        }

        return hash.ToHashCode();
    }

    /// <summary>Whether this list is for exactly this query.</summary>
    public bool IsFor(ServerSet set, int hash, ReadOnlySpan<ulong[]> parts, ReadOnlySpan<Probe> probes)
    {
        if (!ReferenceEquals(Set, set) || Hash != hash || _partCount != parts.Length || _probeCount != probes.Length)
        {
            return false;
        }

        for (int k = 0; k < parts.Length; k++)
        {
            if (!ReferenceEquals(_parts[k], parts[k]))
            {
                return false;
            }
        }

        for (int k = 0; k < probes.Length; k++)
        {
            if (!_probes[k].SameAs(probes[k]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Takes the list over for a query and fills it from a walk over the candidates (the walk's tie-breaker is
    /// <paramref name="tie"/>). The log position is read before the walk, so changes during it are applied later.
    /// </summary>
    public void Rebuild(ServerSet set, int hash, ReadOnlySpan<ulong[]> parts, ReadOnlySpan<Probe> probes, ref CandidateScan scan, TieMap tie, ChangeLog log)
    {
        if (!IsFor(set, hash, parts, probes))
        {
            Set = set;
            Hash = hash;
            if (_parts.Length < parts.Length)
            {
                _parts = new ulong[parts.Length][];
            }

            if (_probes.Length < probes.Length)
            {
                _probes = new Probe[probes.Length];
            }

            parts.CopyTo(_parts);
            probes.CopyTo(_probes);
            _partCount = parts.Length;
            _probeCount = probes.Length;
            if (Mask.Length != set.WordCount)
            {
                Mask = new ulong[set.WordCount];
            }

            parts[0].CopyTo(Mask, 0);
            for (int k = 1; k < parts.Length; k++)
            {
                Bits.And(Mask, parts[k]);
            }
        }

        LogPosition = log.Head;
        Tie = tie;
        scan.Mask = Mask;
        Count = scan.Collect(default(LeastLoadPolicy.LoadKey), tie, _entries.AsSpan(0, Capacity));
        SawFull = scan.SawFull;
        Bound = Count < Capacity ? ulong.MaxValue : _entries[Capacity - 1] + 1;
    }

    /// <summary>
    /// Applies the changes logged since the last call. False when the list must be rebuilt instead: the log moved
    /// on past what it keeps, or further than <paramref name="most"/> changes (a walk is then cheaper).
    /// </summary>
    public bool CatchUp(ChangeLog log, ServerSet set, ReadOnlySpan<Probe> probes, uint since, bool scoreFirst, int most)
    {
        long head = log.Head;
        if (head - LogPosition > Math.Min(most, ChangeLog.Size))
        {
            return false;
        }

        for (long q = LogPosition; q < head; q++)
        {
            switch (log.TryRead(q, out int slot))
            {
                case 0:
                    // Its writer is still storing it: the next decision reads it.
                    LogPosition = q;
                    return true;
                case < 0:
                    return false;
            }

            int i = set.IndexOfSlot(slot);
            if (i >= 0 && Bits.Test(Mask, i))
            {
                Update(i, set.RankOf(i), probes, since, scoreFirst);
            }
        }

        LogPosition = head;
        return true;
    }

    /// <summary>Re-places candidate <paramref name="i"/> after its rank word changed (out, when it is no candidate now).</summary>
    public void Update(int i, ulong rank, ReadOnlySpan<Probe> probes, uint since, bool scoreFirst)
    {
        ulong tieBits = Tie.Map(i);
        Remove(tieBits);
        if (!CandidateScan.IsCandidate(rank, since))
        {
            return;
        }

        ulong composite = CandidateScan.Composite(scoreFirst, Probe.Score(probes, i), RankWord.Key(rank), tieBits);
        if (composite >= Bound)
        {
            return;
        }

        int at = Count;
        while (at > 0 && _entries[at - 1] > composite)
        {
            _entries[at] = _entries[at - 1];
            at--;
        }

        _entries[at] = composite;
        if (++Count > Capacity)
        {
            // The last drops out: now only what is below it is known to be here.
            Count = Capacity;
            Bound = _entries[Capacity];
        }
    }

    /// <summary>Takes out the entry of the server whose tie-breaker bits these are, if it is in the list.</summary>
    public void Remove(ulong tieBits)
    {
        for (int k = 0; k < Count; k++)
        {
            if ((_entries[k] & TieMap.Mask) == tieBits)
            {
                Array.Copy(_entries, k + 1, _entries, k, Count - k - 1);
                Count--;
                return;
            }
        }
    }

    /// <summary>Takes a server out of this list's candidate set for good (it left the snapshot's engine; its slot may be another server's now).</summary>
    public void Exclude(int i)
    {
        Mask[i >> 6] &= ~(1UL << i);
        Remove(Tie.Map(i));
    }

    /// <summary>Leading entries that tie with the first on score and load (differ only in the tie-breaker).</summary>
    public int TiedAtHead()
    {
        if (Count == 0)
        {
            return 0;
        }

        ulong head = _entries[0] >> TieMap.Bits;
        int n = 1;
        while (n < Count && _entries[n] >> TieMap.Bits == head)
        {
            n++;
        }

        return n;
    }
}
