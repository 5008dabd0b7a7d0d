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
    /// <summary>The key of the server at <paramref name="index"/> (its <paramref name="load"/> is given; the rest of its figures are in <paramref name="lives"/>).</summary>
    uint Key(ServerLive[] lives, int index, uint load);
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
    public LiveCounters[][] Chunks;
    public int[]? SlotMap;
    public ReadOnlySpan<Probe> Probes;

    /// <summary>Two scratch bitmaps as long as <see cref="Mask"/>, for preferences kept as member lists.</summary>
    public Span<ulong> Scratch0;
    public Span<ulong> Scratch1;
    public long Now;
    public long Expire;
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
        if (Probes.Length <= 2)
        {
            switch ((SlotMap is null, ScoreFirst))
            {
                case (true, true):
                    Scan<TKey, SameSlots, ScoreFirstOrder>(policy, new SameSlots(Chunks), randomTies);
                    break;
                case (true, false):
                    Scan<TKey, SameSlots, KeyFirstOrder>(policy, new SameSlots(Chunks), randomTies);
                    break;
                case (false, true):
                    Scan<TKey, MappedSlots, ScoreFirstOrder>(policy, new MappedSlots(Chunks, SlotMap!), randomTies);
                    break;
                default:
                    Scan<TKey, MappedSlots, KeyFirstOrder>(policy, new MappedSlots(Chunks, SlotMap!), randomTies);
                    break;
            }
        }
        else if (ScoreFirst)
        {
            ScanMany<TKey, ScoreFirstOrder>(policy, randomTies);
        }
        else
        {
            ScanMany<TKey, KeyFirstOrder>(policy, randomTies);
        }
    }

    // The candidate loop, for up to two preferences (the usual case): kept small, with no call but the rare
    // entry into the short list, so the JIT holds its values in registers. The preferences are bitmaps read once
    // per word; each candidate's counters are one 32-byte entry of the counter table, walked in memory order; a
    // candidate whose preference score alone ranks it below a full short list is passed over without reading them.
    private void Scan<TKey, TSlots, TOrder>(TKey policy, TSlots slots, bool randomTies)
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
        ServerLive[] lives = Lives;

        // Expired: last heard before now − ExpireAfter.
        long heardSince = Now - Expire;

        // Key of the worst kept entry once the short list is full; nothing composes to ulong.MaxValue before.
        ulong worst = ulong.MaxValue;
        for (int w = 0; w < words; w++)
        {
            ulong bits = mask[w];
            if (bits == 0)
            {
                continue;
            }

            ulong hits0 = pref0[w] ^ flip0;
            ulong hits1 = pref1[w] ^ flip1;
            ref LiveCounters wordBase = ref slots.Word(w);
            do
            {
                int bit = BitOperations.TrailingZeroCount(bits);
                bits &= bits - 1;

                // Composite key: preference score and policy key in the configured order, the tie-breaker in the
                // low 16 bits. The score's part is known before the counters are read.
                int score = ((int)(hits0 >> bit) & 1) * weight0 + ((int)(hits1 >> bit) & 1) * weight1;
                ulong scorePart = TOrder.ScorePart(score);
                if (scorePart >= worst)
                {
                    continue;
                }

                int i = (w << 6) + bit;
                ref LiveCounters c = ref slots.At(ref wordBase, i, bit);
                if (Volatile.Read(ref c.State) != (int)ServerState.Up || Volatile.Read(ref c.LastHeardTimestamp) < heardSince)
                {
                    continue;
                }

                int used = Volatile.Read(ref c.Active) + Volatile.Read(ref c.Issued);
                if (used >= Volatile.Read(ref c.Capacity))
                {
                    SawFull = true;
                    continue;
                }

                // used < capacity, so used × ⌊2^32 ÷ capacity⌋ < 2^32: the load as a fraction, without a division.
                uint load = (uint)((ulong)(uint)used * Volatile.Read(ref c.LoadFactor));
                ulong composite = scorePart | TOrder.KeyPart(policy.Key(lives, i, load));

                // The tie-breaker only adds low bits: anything not below the worst kept entry already is out.
                if (composite < worst)
                {
                    worst = Keep(composite, i, score, load, randomTies);
                }
            }
            while (bits != 0);
        }
    }

    // More than two preferences (rare): each probed per candidate, counters looked up by slot.
    private void ScanMany<TKey, TOrder>(TKey policy, bool randomTies)
        where TKey : struct, IRankKey
        where TOrder : struct, IKeyOrder
    {
        ReadOnlySpan<ulong> mask = Mask;
        LiveCounters[][] chunks = Chunks;
        ServerLive[] lives = Lives;
        long heardSince = Now - Expire;
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

                int slot = SlotMap is { } map ? map[i] : i;
                ref LiveCounters c = ref chunks[slot >> LiveTable.ChunkShift][slot & LiveTable.ChunkMask];
                if (Volatile.Read(ref c.State) != (int)ServerState.Up || Volatile.Read(ref c.LastHeardTimestamp) < heardSince)
                {
                    continue;
                }

                int used = Volatile.Read(ref c.Active) + Volatile.Read(ref c.Issued);
                if (used >= Volatile.Read(ref c.Capacity))
                {
                    SawFull = true;
                    continue;
                }

                uint load = (uint)((ulong)(uint)used * Volatile.Read(ref c.LoadFactor));
                ulong composite = scorePart | TOrder.KeyPart(policy.Key(lives, i, load));
                if (composite < worst)
                {
                    worst = Keep(composite, i, score, load, randomTies);
                }
            }
        }
    }

    /// <summary>Enters one server into the short list (dropping the worst when full); returns the new bar to pass.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong Keep(ulong composite, int i, int score, uint load, bool randomTies)
    {
        Span<Ranked> top = Top;
        int k = top.Length;
        int filled = Filled;
        if (randomTies)
        {
            composite |= PolicyHash.Random(Seed, i) & 0xFFFF;
        }

        if (filled == k)
        {
            // The loop let it in on its score and key; with its tie-breaker it may still lose to the worst kept.
            if (composite >= top[k - 1].Key)
            {
                return top[k - 1].Key;
            }

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

/// <summary>Finds a candidate's counters: the entry for word <c>w</c> first, then per candidate.</summary>
internal interface ISlots
{
    ref LiveCounters Word(int word);

    ref LiveCounters At(ref LiveCounters word, int index, int bit);
}

/// <summary>
/// Every server's slot is its index (no freed slot below the last one): a word's 64 servers are 64 consecutive
/// entries of one chunk (a chunk holds a whole number of words), found once per word.
/// </summary>
internal readonly struct SameSlots(LiveCounters[][] chunks) : ISlots
{
    public ref LiveCounters Word(int word)
    {
        const int wordsPerChunk = LiveTable.ChunkSize / 64;
        return ref chunks[word / wordsPerChunk][(word % wordsPerChunk) * 64];
    }

    // bit < 64 and the word's entry is at most ChunkSize - 64 into its chunk: the entry is inside the chunk.
    public ref LiveCounters At(ref LiveCounters word, int index, int bit) => ref Unsafe.Add(ref word, bit);
}

/// <summary>Slots looked up per index (after deregistrations left gaps).</summary>
internal readonly struct MappedSlots(LiveCounters[][] chunks, int[] map) : ISlots
{
    public ref LiveCounters Word(int word) => ref Unsafe.NullRef<LiveCounters>();

    public ref LiveCounters At(ref LiveCounters word, int index, int bit)
    {
        int slot = map[index];
        return ref chunks[slot >> LiveTable.ChunkShift][slot & LiveTable.ChunkMask];
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
