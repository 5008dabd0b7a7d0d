using System.Numerics;
using System.Runtime.CompilerServices;

namespace Vip.Selection.Policies;

/// <summary>
/// A ranking policy: scans the candidates of one decision with its own ranking key, then settles the short
/// list (a second look at its head, and bookkeeping for a committed choice).
/// </summary>
internal interface ISelectionPolicy
{
    /// <summary>Scans the matching servers, keeping the best few in <see cref="CandidateScan.Top"/>.</summary>
    void Rank(ref CandidateScan scan);

    /// <summary>
    /// Reorders the head of the short list if the policy needs a second look, and records the choice
    /// (<c>Top[0]</c>) when <paramref name="commit"/> is true (false for explain's dry run).
    /// </summary>
    void Settle(ref CandidateScan scan, bool commit);
}

/// <summary>The ranking key of one policy (lower ranks first); a struct so the scan loop is specialised and inlined per policy.</summary>
internal interface IRankKey
{
    /// <summary>The key of the server at <paramref name="index"/>, whose load key is <paramref name="load"/>.</summary>
    uint Key(int index, uint load);
}

/// <summary>One entry of a decision's result list (the walk ranks by composite keys; these are the kept ones, decoded).</summary>
/// <param name="Index">Server index in the snapshot.</param>
/// <param name="Score">Preference score.</param>
/// <param name="Load">(active + issued) ÷ capacity as a 32-bit fraction.</param>
internal readonly record struct Ranked(int Index, int Score, uint Load);

/// <summary>
/// One pass over the servers that passed the index filters: drops those that are not up, expired or full,
/// scores preferences, computes the policy key and keeps the best <c>Top.Length</c> in order. Allocates nothing.
/// </summary>
internal ref struct CandidateScan
{

    public ReadOnlySpan<ulong> Mask;
    public ServerLive[] Lives;
    public ulong[] IdHashes;
    public ulong[][] Ranks;
    public int[]? SlotMap;
    public ReadOnlySpan<Probe> Probes;

    /// <summary>Two scratch bitmaps as long as <see cref="Mask"/>, for preferences kept as member lists.</summary>
    public Span<ulong> Scratch0;
    public Span<ulong> Scratch1;

    /// <summary>A third scratch bitmap (a policy's own use).</summary>
    public Span<ulong> Scratch2;

    /// <summary>Servers last heard before this (in rank-word units) are expired.</summary>
    public uint HeardSince;
    public ulong Seed;
    public ulong ClientHash;
    public bool ScoreFirst;
    public Span<Ranked> Top;

    /// <summary>Entries of <see cref="Top"/> in use.</summary>
    public int Filled;

    /// <summary>True when a matching, up server was skipped because it was full.</summary>
    public bool SawFull;

    public void Run<TKey>(TKey policy, bool randomTies)
        where TKey : struct, IRankKey
    {
        // The short list while scanning: composite keys only, sorted, unused entries at ulong.MaxValue (no
        // composite reaches it), so the last entry is always the bar to pass.
        Span<ulong> top = stackalloc ulong[Top.Length];
        TieMap tie = randomTies ? new TieMap(Seed) : TieMap.Identity;
        int filled = Collect(policy, tie, top);

        // The index is in the composite's low bits; score and load are looked up again for the few kept.
        for (int k = 0; k < filled; k++)
        {
            int i = tie.IndexOf(top[k]);
            Top[k] = new Ranked(i, ScoreOf(i), RankWord.Key(RankOf(i)));
        }

        Filled = filled;
    }

    /// <summary>
    /// Scans the candidates and keeps the best <c>top.Length</c> composite keys in <paramref name="top"/>, sorted;
    /// returns how many there are (fewer when there are fewer candidates). Sets <see cref="SawFull"/>.
    /// </summary>
    public int Collect<TKey>(TKey policy, TieMap tie, scoped Span<ulong> top)
        where TKey : struct, IRankKey
    {
        SawFull = false;
        top.Fill(ulong.MaxValue);
        if (Probes.Length <= 2)
        {
            switch ((SlotMap is null, ScoreFirst))
            {
                case (true, true):
                    Scan<TKey, SameSlots, ScoreFirstOrder>(policy, new SameSlots(Ranks), tie, top);
                    break;
                case (true, false):
                    Scan<TKey, SameSlots, KeyFirstOrder>(policy, new SameSlots(Ranks), tie, top);
                    break;
                case (false, true):
                    Scan<TKey, MappedSlots, ScoreFirstOrder>(policy, new MappedSlots(Ranks, SlotMap!), tie, top);
                    break;
                default:
                    Scan<TKey, MappedSlots, KeyFirstOrder>(policy, new MappedSlots(Ranks, SlotMap!), tie, top);
                    break;
            }
        }
        else if (ScoreFirst)
        {
            ScanMany<TKey, ScoreFirstOrder>(policy, tie, top);
        }
        else
        {
            ScanMany<TKey, KeyFirstOrder>(policy, tie, top);
        }

        int filled = 0;
        while (filled < top.Length && top[filled] != ulong.MaxValue)
        {
            filled++;
        }

        return filled;
    }

    /// <summary>The rank word of server <paramref name="i"/>.</summary>
    public readonly ulong RankOf(int i) => Volatile.Read(ref new MappedSlots(Ranks, SlotMap).Of(i));

    /// <summary>The preference score of server <paramref name="i"/>.</summary>
    public readonly int ScoreOf(int i) => Probe.Score(Probes, i);

    /// <summary>The composite key of one candidate, as the scan composes it.</summary>
    public static ulong Composite(bool scoreFirst, int score, uint key, ulong tieBits) =>
        scoreFirst
            ? ScoreFirstOrder.ScorePart(score) | ScoreFirstOrder.KeyPart(key) | tieBits
            : KeyFirstOrder.ScorePart(score) | KeyFirstOrder.KeyPart(key) | tieBits;

    /// <summary>Whether a matching server's rank word makes it a candidate (heard recently, up, with room), without noting full ones.</summary>
    public static bool IsCandidate(ulong rank, uint since) => !RankWord.IsExpired(rank, since) && RankWord.Key(rank) < RankWord.Full;

    // The candidate loop, for up to two preferences (the usual case). Per bitmap word, the candidates are split by
    // which preferences they meet into at most four groups of one score each, walked best score first: a group
    // whose score alone ranks it below a full short list is passed over whole, and the loop over a group's
    // members reads one 8-byte rank word each and leaves its registers only for the rare entry into the short
    // list. Rank words are walked in memory order within a group.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Scan<TKey, TSlots, TOrder>(TKey policy, TSlots slots, TieMap tie, scoped Span<ulong> top)
        where TKey : struct, IRankKey
        where TSlots : struct, ISlots
        where TOrder : struct, IKeyOrder
    {
        ReadOnlySpan<ulong> mask = Mask;
        int words = mask.Length;

        // No preference: weight 0 over any bitmap of the right length.
        ReadOnlySpan<ulong> pref0 = mask;
        ReadOnlySpan<ulong> pref1 = mask;
        ulong flip0 = 0, flip1 = 0;
        int weight0 = 0, weight1 = 0;
        if (Probes.Length > 0)
        {
            pref0 = Probes[0].Words(Scratch0, out flip0);
            weight0 = Probes[0].Weight;
        }

        if (Probes.Length > 1)
        {
            pref1 = Probes[1].Words(Scratch1, out flip1);
            weight1 = Probes[1].Weight;
        }

        pref0 = pref0[..words];
        pref1 = pref1[..words];

        // Weights are positive: both, then the heavier one alone, then the other, then none.
        (ulong hiFlip, ulong loFlip, int hiWeight, int loWeight) = weight0 >= weight1 ? (flip0, flip1, weight0, weight1) : (flip1, flip0, weight1, weight0);
        ReadOnlySpan<ulong> hiPref = weight0 >= weight1 ? pref0 : pref1;
        ReadOnlySpan<ulong> loPref = weight0 >= weight1 ? pref1 : pref0;
        ulong scoreBoth = TOrder.ScorePart(hiWeight + loWeight);
        ulong scoreHi = TOrder.ScorePart(hiWeight);
        ulong scoreLo = TOrder.ScorePart(loWeight);
        ulong scoreNone = TOrder.ScorePart(0);
        uint since = HeardSince;
        ulong worst = top[^1];
        for (int w = 0; w < words; w++)
        {
            ulong bits = mask[w];
            if (bits == 0)
            {
                continue;
            }

            ulong hi = hiPref[w] ^ hiFlip;
            ulong lo = loPref[w] ^ loFlip;
            ref ulong wordBase = ref slots.Word(w);
            int first = w << 6;
            worst = Walk<TKey, TSlots, TOrder>(policy, slots, ref wordBase, first, bits & hi & lo, scoreBoth, since, worst, tie, top);
            worst = Walk<TKey, TSlots, TOrder>(policy, slots, ref wordBase, first, bits & hi & ~lo, scoreHi, since, worst, tie, top);
            worst = Walk<TKey, TSlots, TOrder>(policy, slots, ref wordBase, first, bits & ~hi & lo, scoreLo, since, worst, tie, top);
            worst = Walk<TKey, TSlots, TOrder>(policy, slots, ref wordBase, first, bits & ~(hi | lo), scoreNone, since, worst, tie, top);
        }
    }

    /// <summary>Walks the members of one word that share one preference score; returns the new bar to pass.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong Walk<TKey, TSlots, TOrder>(TKey policy, TSlots slots, ref ulong wordBase, int first, ulong bits, ulong scorePart, uint since, ulong worst, TieMap tie, scoped Span<ulong> top)
        where TKey : struct, IRankKey
        where TSlots : struct, ISlots
        where TOrder : struct, IKeyOrder
    {
        // The score alone decides against the whole group (possible only when the score ranks first).
        if (bits == 0 || scorePart >= worst)
        {
            return worst;
        }

        do
        {
            int bit = BitOperations.TrailingZeroCount(bits);
            bits &= bits - 1;
            int i = first + bit;
            ulong rank = Volatile.Read(ref slots.At(ref wordBase, i, bit));
            if (!IsCandidateNotingFull(rank, since))
            {
                continue;
            }

            // The tie-breaker only adds low bits: a candidate whose score and key are above the worst kept entry's
            // is out without it.
            ulong basis = scorePart | TOrder.KeyPart(policy.Key(i, RankWord.Key(rank)));
            if (basis > worst)
            {
                continue;
            }

            ulong composite = basis | tie.Map(i);
            if (composite < worst)
            {
                worst = Keep(top, composite);
            }
        }
        while (bits != 0);
        return worst;
    }

    // More than two preferences (rare): each probed per candidate, rank words looked up by slot.
    private void ScanMany<TKey, TOrder>(TKey policy, TieMap tie, scoped Span<ulong> top)
        where TKey : struct, IRankKey
        where TOrder : struct, IKeyOrder
    {
        ReadOnlySpan<ulong> mask = Mask;
        var slots = new MappedSlots(Ranks, SlotMap);
        uint since = HeardSince;
        ulong worst = top[^1];
        for (int w = 0; w < mask.Length; w++)
        {
            ulong bits = mask[w];
            while (bits != 0)
            {
                int i = (w << 6) + BitOperations.TrailingZeroCount(bits);
                bits &= bits - 1;
                int score = Probe.Score(Probes, i);
                ulong scorePart = TOrder.ScorePart(score);
                if (scorePart >= worst)
                {
                    continue;
                }

                ulong rank = Volatile.Read(ref slots.Of(i));
                if (IsCandidateNotingFull(rank, since))
                {
                    ulong composite = scorePart | TOrder.KeyPart(policy.Key(i, RankWord.Key(rank))) | tie.Map(i);
                    if (composite < worst)
                    {
                        worst = Keep(top, composite);
                    }
                }
            }
        }
    }

    /// <summary>Whether a matching server's rank word makes it a candidate: heard recently, up, with room (notes a full one).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool IsCandidateNotingFull(ulong rank, uint since)
    {
        if (RankWord.IsExpired(rank, since))
        {
            return false;
        }

        uint key = RankWord.Key(rank);
        if (key < RankWord.Full)
        {
            return true;
        }

        SawFull |= key == RankWord.Full;
        return false;
    }

    /// <summary>Enters a composite below the last entry into the sorted short list (the last drops out); returns the new bar.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Keep(Span<ulong> top, ulong composite)
    {
        int at = top.Length - 1;
        while (at > 0 && top[at - 1] > composite)
        {
            top[at] = top[at - 1];
            at--;
        }

        top[at] = composite;
        return top[^1];
    }
}

/// <summary>
/// The tie-breaker in a composite key's low 20 bits: a bijection of the server index (up to 2^20 servers) that
/// is random per decision, so equal keys fall differently each time and the index can be read back.
/// The identity keeps ties in index order.
/// </summary>
internal readonly struct TieMap
{
    public const int Bits = 20;
    public const ulong Mask = (1UL << Bits) - 1;

    private readonly ulong _scale;    // odd: multiplying by it permutes the residues mod 2^20
    private readonly ulong _inverse;  // _scale⁻¹ mod 2^64
    private readonly ulong _flip;

    public TieMap(ulong seed)
    {
        _scale = seed | 1;
        _flip = PolicyHash.Mix(seed) & Mask;

        // Newton's iteration for the inverse mod 2^64: each round doubles the correct low bits (3 to start).
        ulong x = _scale;
        for (int round = 0; round < 5; round++)
        {
            x *= 2 - (_scale * x);
        }

        _inverse = x;
    }

    private TieMap(ulong scale, ulong inverse, ulong flip) => (_scale, _inverse, _flip) = (scale, inverse, flip);

    public static TieMap Identity => new(1, 1, 0);

    public ulong Map(int index) => (((ulong)(uint)index * _scale) & Mask) ^ _flip;

    public int IndexOf(ulong composite) => (int)((((composite & Mask) ^ _flip) * _inverse) & Mask);
}

/// <summary>Finds a candidate's rank word: the entry for word <c>w</c> first, then per candidate.</summary>
internal interface ISlots
{
    ref ulong Word(int word);

    ref ulong At(ref ulong word, int index, int bit);
}

/// <summary>
/// Every server's slot is its index (no freed slot below the last one): a word's 64 servers are 64 consecutive
/// entries of one chunk (a chunk holds a whole number of words), found once per word.
/// </summary>
internal readonly struct SameSlots(ulong[][] ranks) : ISlots
{
    public ref ulong Word(int word)
    {
        const int wordsPerChunk = LiveTable.ChunkSize / 64;
        return ref ranks[word / wordsPerChunk][(word % wordsPerChunk) * 64];
    }

    // bit < 64 and the word's entry is at most ChunkSize - 64 into its chunk: the entry is inside the chunk.
    public ref ulong At(ref ulong word, int index, int bit) => ref Unsafe.Add(ref word, bit);
}

/// <summary>Slots looked up per index (after deregistrations left gaps; or every index is its slot when the map is null).</summary>
internal readonly struct MappedSlots(ulong[][] ranks, int[]? map) : ISlots
{
    public ref ulong Word(int word) => ref Unsafe.NullRef<ulong>();

    public ref ulong At(ref ulong word, int index, int bit) => ref Of(index);

    /// <summary>The rank word of the server at <paramref name="index"/>.</summary>
    public ref ulong Of(int index)
    {
        int slot = map is null ? index : map[index];
        return ref ranks[slot >> LiveTable.ChunkShift][slot & LiveTable.ChunkMask];
    }
}

/// <summary>Where the preference score and the policy key go in the composite key (a type, so each order is compiled on its own).</summary>
internal interface IKeyOrder
{
    /// <summary>The score's bits: a higher score is a lower key.</summary>
    static abstract ulong ScorePart(int score);

    /// <summary>The policy key's bits: its top 27 bits (finer differences are ties), so no composite reaches ulong.MaxValue.</summary>
    static abstract ulong KeyPart(uint key);
}

/// <summary><see cref="PreferenceMode.ScoreFirst"/>: score in bits 48–63, policy key in 20–46, tie-breaker in 0–19.</summary>
internal readonly struct ScoreFirstOrder : IKeyOrder
{
    public static ulong ScorePart(int score) => (ulong)(0xFFFF - Math.Min(score, 0xFFFF)) << 48;

    public static ulong KeyPart(uint key) => (ulong)(key >> 5) << TieMap.Bits;
}

/// <summary><see cref="PreferenceMode.TieBreak"/>: policy key in bits 36–62, score in 20–35, tie-breaker in 0–19.</summary>
internal readonly struct KeyFirstOrder : IKeyOrder
{
    public static ulong ScorePart(int score) => (ulong)(0xFFFF - Math.Min(score, 0xFFFF)) << TieMap.Bits;

    public static ulong KeyPart(uint key) => (ulong)(key >> 5) << 36;
}

/// <summary>Hashes shared by the policies: stable across processes (rendezvous must agree between tier-2 daemons).</summary>
internal static class PolicyHash
{
    /// <summary>SplitMix64's finaliser: a cheap, well-mixed 64-bit hash of a 64-bit value.</summary>
    public static ulong Mix(ulong x)
    {
        x ^= x >> 30;
        x *= 0xBF58476D1CE4E5B9UL;
        x ^= x >> 27;
        x *= 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    /// <summary>A per-decision pseudo-random value for one server index.</summary>
    public static ulong Random(ulong seed, int index) => Mix(seed + ((ulong)(uint)index * 0x9E3779B97F4A7C15UL));

    /// <summary>FNV-1a over UTF-8 bytes, then mixed: stable across processes and platforms.</summary>
    public static ulong Stable(ReadOnlySpan<byte> utf8)
    {
        ulong h = 14695981039346656037UL;
        foreach (byte b in utf8)
        {
            h = (h ^ b) * 1099511628211UL;
        }

        return Mix(h);
    }

    public static ulong Stable(string s)
    {
        Span<byte> buffer = stackalloc byte[256];
        int n = System.Text.Encoding.UTF8.GetByteCount(s);
        Span<byte> bytes = n > buffer.Length ? new byte[n] : buffer;
        int written = System.Text.Encoding.UTF8.GetBytes(s, bytes);
        return Stable(bytes[..written]);
    }
}
