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

/// <summary>One entry of the short list.</summary>
/// <param name="Key">Composite key: preference score, policy key and tie-breaker, in the configured order.</param>
/// <param name="Index">Server index in the snapshot.</param>
/// <param name="Score">Preference score.</param>
/// <param name="Load">(active + issued) ÷ capacity as a 32-bit fraction.</param>
internal readonly record struct Ranked(ulong Key, int Index, int Score, uint Load);

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
        Filled = 0;
        SawFull = false;

        // The tie-breaker (low 16 bits of the composite key): a random affine map of the index, fresh per
        // decision, so equal keys fall differently each time; zero keeps ties in index order.
        ulong tieScale = randomTies ? Seed | 1 : 0;
        ulong tieShift = randomTies ? PolicyHash.Mix(Seed) : 0;
        if (Probes.Length <= 2)
        {
            switch ((SlotMap is null, ScoreFirst))
            {
                case (true, true):
                    Scan<TKey, SameSlots, ScoreFirstOrder>(policy, new SameSlots(Ranks), tieScale, tieShift);
                    break;
                case (true, false):
                    Scan<TKey, SameSlots, KeyFirstOrder>(policy, new SameSlots(Ranks), tieScale, tieShift);
                    break;
                case (false, true):
                    Scan<TKey, MappedSlots, ScoreFirstOrder>(policy, new MappedSlots(Ranks, SlotMap!), tieScale, tieShift);
                    break;
                default:
                    Scan<TKey, MappedSlots, KeyFirstOrder>(policy, new MappedSlots(Ranks, SlotMap!), tieScale, tieShift);
                    break;
            }
        }
        else if (ScoreFirst)
        {
            ScanMany<TKey, ScoreFirstOrder>(policy, tieScale, tieShift);
        }
        else
        {
            ScanMany<TKey, KeyFirstOrder>(policy, tieScale, tieShift);
        }
    }

    // The candidate loop, for up to two preferences (the usual case). Per bitmap word, the candidates are split by
    // which preferences they meet into at most four groups of one score each, walked best score first: a group
    // whose score alone ranks it below a full short list is passed over whole, and the loop over a group's
    // members reads one 8-byte rank word each and has no call but the rare entry into the short list, so the JIT
    // keeps its values in registers. Rank words are walked in memory order within a group.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Scan<TKey, TSlots, TOrder>(TKey policy, TSlots slots, ulong tieScale, ulong tieShift)
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

        // Key of the worst kept entry once the short list is full; nothing composes to ulong.MaxValue before.
        ulong worst = ulong.MaxValue;
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
            worst = Walk<TKey, TSlots, TOrder>(policy, slots, ref wordBase, first, bits & hi & lo, scoreBoth, hiWeight + loWeight, since, worst, tieScale, tieShift);
            worst = Walk<TKey, TSlots, TOrder>(policy, slots, ref wordBase, first, bits & hi & ~lo, scoreHi, hiWeight, since, worst, tieScale, tieShift);
            worst = Walk<TKey, TSlots, TOrder>(policy, slots, ref wordBase, first, bits & ~hi & lo, scoreLo, loWeight, since, worst, tieScale, tieShift);
            worst = Walk<TKey, TSlots, TOrder>(policy, slots, ref wordBase, first, bits & ~(hi | lo), scoreNone, 0, since, worst, tieScale, tieShift);
        }
    }

    /// <summary>Walks the members of one word that share one preference score; returns the new bar to pass.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong Walk<TKey, TSlots, TOrder>(TKey policy, TSlots slots, ref ulong wordBase, int first, ulong bits, ulong scorePart, int score, uint since, ulong worst, ulong tieScale, ulong tieShift)
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
            if (!IsCandidate(rank, since))
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

            ulong composite = basis | Tie(i, tieScale, tieShift);
            if (composite < worst)
            {
                worst = Keep(composite, i, score, RankWord.Key(rank));
            }
        }
        while (bits != 0);
        return worst;
    }

    // More than two preferences (rare): each probed per candidate, rank words looked up by slot.
    private void ScanMany<TKey, TOrder>(TKey policy, ulong tieScale, ulong tieShift)
        where TKey : struct, IRankKey
        where TOrder : struct, IKeyOrder
    {
        ReadOnlySpan<ulong> mask = Mask;
        var slots = new MappedSlots(Ranks, SlotMap);
        uint since = HeardSince;
        ulong worst = ulong.MaxValue;
        for (int w = 0; w < mask.Length; w++)
        {
            ulong bits = mask[w];
            while (bits != 0)
            {
                int i = (w << 6) + BitOperations.TrailingZeroCount(bits);
                bits &= bits - 1;
                int score = 0;
                foreach (ref readonly Probe p in Probes)
                {
                    score += p.Contains(i) ? p.Weight : 0;
                }

                ulong scorePart = TOrder.ScorePart(score);
                if (scorePart >= worst)
                {
                    continue;
                }

                ulong rank = Volatile.Read(ref slots.At(ref Unsafe.NullRef<ulong>(), i, 0));
                if (IsCandidate(rank, since))
                {
                    ulong composite = scorePart | TOrder.KeyPart(policy.Key(i, RankWord.Key(rank))) | Tie(i, tieScale, tieShift);
                    if (composite < worst)
                    {
                        worst = Keep(composite, i, score, RankWord.Key(rank));
                    }
                }
            }
        }
    }

    /// <summary>Whether a matching server's rank word makes it a candidate: heard recently, up, with room (notes a full one).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool IsCandidate(ulong rank, uint since)
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

    /// <summary>The tie-breaker of server <paramref name="i"/>: 16 bits of a random affine map of the index (0 when the scale is 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Tie(int i, ulong scale, ulong shift) => (((ulong)(uint)i * scale) + shift) >> 48;

    /// <summary>Enters one server into the short list (dropping the worst when full); returns the new bar to pass.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong Keep(ulong composite, int i, int score, uint load)
    {
        Span<Ranked> top = Top;
        int k = top.Length;
        int filled = Filled;
        if (filled == k)
        {
            filled--;
        }

        int at = filled;
        while (at > 0 && top[at - 1].Key > composite)
        {
            top[at] = top[at - 1];
            at--;
        }

        top[at] = new Ranked(composite, i, score, load);
        Filled = ++filled;
        return filled == k ? top[k - 1].Key : ulong.MaxValue;
    }
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

    public ref ulong At(ref ulong word, int index, int bit)
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

    static abstract ulong KeyPart(uint key);
}

/// <summary><see cref="PreferenceMode.ScoreFirst"/>: score in bits 48–63, policy key in 16–47.</summary>
internal readonly struct ScoreFirstOrder : IKeyOrder
{
    public static ulong ScorePart(int score) => (ulong)(0xFFFF - Math.Min(score, 0xFFFF)) << 48;

    public static ulong KeyPart(uint key) => (ulong)key << 16;
}

/// <summary><see cref="PreferenceMode.TieBreak"/>: policy key in bits 32–63, score in 16–31.</summary>
internal readonly struct KeyFirstOrder : IKeyOrder
{
    public static ulong ScorePart(int score) => (ulong)(0xFFFF - Math.Min(score, 0xFFFF)) << 16;

    public static ulong KeyPart(uint key) => (ulong)key << 32;
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
