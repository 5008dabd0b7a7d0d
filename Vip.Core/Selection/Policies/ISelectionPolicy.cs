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
    uint Key(ServerLive live, int index, uint load);
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
    public ReadOnlySpan<Probe> Probes;
    public long Now;
    public long Expire;
    public ulong Seed;
    public ulong ClientHash;
    public bool ScoreFirst;
    public Span<Ranked> Top;

    /// <summary>Entries of <see cref="Top"/> in use.</summary>
    public int Filled;

    /// <summary>Candidates seen (up, fresh, under capacity).</summary>
    public int Candidates;

    /// <summary>True when a matching, up server was skipped because it was full.</summary>
    public bool SawFull;

    public void Run<TKey>(TKey policy, bool randomTies)
        where TKey : struct, IRankKey
    {
        // Up to two preferences (the usual case) are read once per bitmap word and held in registers.
        if (Probes.Length <= 2)
        {
            Scan(policy, new TwoProbes(Probes), randomTies);
        }
        else
        {
            Scan(policy, new ManyProbes(Probes), randomTies);
        }
    }

    // The candidate loop is kept small (few live values) so the JIT holds it in registers; the rare entry into
    // the short list is a call.
    private void Scan<TKey, TScore>(TKey policy, TScore scorer, bool randomTies)
        where TKey : struct, IRankKey
        where TScore : struct, IScorer, allows ref struct
    {
        ReadOnlySpan<ulong> mask = Mask;
        ServerLive[] lives = Lives;
        long now = Now;
        long expire = Expire;
        int candidates = 0;
        bool sawFull = false;

        // Composite key: preference score and policy key in the configured order, the tie-breaker in the low 16 bits.
        int scoreShift = ScoreFirst ? 48 : 16;
        int keyShift = ScoreFirst ? 16 : 32;

        // Key of the worst kept entry once the short list is full; nothing composes to ulong.MaxValue before.
        ulong worst = ulong.MaxValue;
        Filled = 0;
        for (int w = 0; w < mask.Length; w++)
        {
            ulong bits = mask[w];
            if (bits == 0)
            {
                continue;
            }

            scorer.Load(w);
            do
            {
                int i = (w << 6) + BitOperations.TrailingZeroCount(bits);
                bits &= bits - 1;
                ServerLive live = lives[i];
                if (live.State != (int)ServerState.Up || now - Volatile.Read(ref live.LastHeardTimestamp) > expire)
                {
                    continue;
                }

                int used = live.Active + Volatile.Read(ref live.Issued);
                if (used >= live.Capacity)
                {
                    sawFull = true;
                    continue;
                }

                candidates++;
                int score = scorer.Score(i);

                // used < capacity, so used × ⌊2^32 ÷ capacity⌋ < 2^32: the load as a fraction, without a division.
                uint load = (uint)((ulong)(uint)used * Volatile.Read(ref live.LoadFactor));
                ulong composite = ((ulong)(0xFFFF - Math.Min(score, 0xFFFF)) << scoreShift) | ((ulong)policy.Key(live, i, load) << keyShift);

                // The tie-breaker only adds low bits: anything not below the worst kept entry already is out.
                if (composite < worst)
                {
                    worst = Keep(composite, i, score, load, randomTies);
                }
            }
            while (bits != 0);
        }

        Candidates = candidates;
        SawFull = sawFull;
    }

    /// <summary>Enters one server into the short list (dropping the worst when full); returns the new bar to pass.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong Keep(ulong composite, int i, int score, uint load, bool randomTies)
    {
        Span<Ranked> top = Top;
        int k = top.Length;
        int filled = Filled;
        if (filled == k)
        {
            filled--;
        }

        if (randomTies)
        {
            composite |= PolicyHash.Random(Seed, i) & 0xFFFF;
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

/// <summary>Preference scoring inside the candidate loop: prepared once per bitmap word, read per candidate.</summary>
internal interface IScorer
{
    void Load(int word);

    int Score(int index);
}

/// <summary>Zero, one or two preferences: one hit word each, in registers (an unused slot has weight 0).</summary>
internal struct TwoProbes : IScorer
{
    private readonly Probe _first;
    private readonly Probe _second;
    private readonly int _count;
    private readonly int _weight0;
    private readonly int _weight1;
    private ulong _hits0;
    private ulong _hits1;

    public TwoProbes(ReadOnlySpan<Probe> probes)
    {
        _count = probes.Length;
        _first = _count > 0 ? probes[0] : default;
        _second = _count > 1 ? probes[1] : default;
        _weight0 = _count > 0 ? _first.Weight : 0;
        _weight1 = _count > 1 ? _second.Weight : 0;
    }

    public void Load(int word)
    {
        if (_count > 0)
        {
            _hits0 = _first.Word(word);
            _hits1 = _count > 1 ? _second.Word(word) : 0;
        }
    }

    public readonly int Score(int index) => ((int)(_hits0 >> index) & 1) * _weight0 + ((int)(_hits1 >> index) & 1) * _weight1;
}

/// <summary>More than two preferences (rare): each probed per candidate.</summary>
internal readonly ref struct ManyProbes(ReadOnlySpan<Probe> probes) : IScorer
{
    private readonly ReadOnlySpan<Probe> _probes = probes;

    public void Load(int word)
    {
    }

    public int Score(int index)
    {
        int score = 0;
        foreach (ref readonly Probe p in _probes)
        {
            score += p.Contains(index) ? p.Weight : 0;
        }

        return score;
    }
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
