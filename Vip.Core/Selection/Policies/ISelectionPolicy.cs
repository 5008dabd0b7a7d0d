using System.Numerics;

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
        ReadOnlySpan<ulong> mask = Mask;
        ServerLive[] lives = Lives;
        ReadOnlySpan<Probe> probes = Probes;
        Span<Ranked> top = Top;
        int k = top.Length;
        int filled = 0;
        int candidates = 0;
        bool sawFull = false;
        long now = Now;
        long expire = Expire;
        ulong seed = Seed;
        bool scoreFirst = ScoreFirst;
        for (int w = 0; w < mask.Length; w++)
        {
            ulong bits = mask[w];
            while (bits != 0)
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
                int score = 0;
                for (int p = 0; p < probes.Length; p++)
                {
                    if (probes[p].Contains(i))
                    {
                        score += probes[p].Weight;
                    }
                }

                // used < capacity, so used × ⌊2^32 ÷ capacity⌋ < 2^32: the load as a fraction, without a division.
                uint load = (uint)((ulong)(uint)used * Volatile.Read(ref live.LoadFactor));
                ulong key = policy.Key(live, i, load);
                ulong inverted = (ulong)(0xFFFF - Math.Min(score, 0xFFFF));
                ulong composite = scoreFirst ? (inverted << 48) | (key << 16) : (key << 32) | (inverted << 16);
                if (filled == k)
                {
                    // The tie-breaker only adds low bits: anything not below the worst kept entry already is out.
                    if (composite >= top[k - 1].Key)
                    {
                        continue;
                    }

                    filled--;
                }

                if (randomTies)
                {
                    composite |= PolicyHash.Random(seed, i) & 0xFFFF;
                }

                int at = filled;
                while (at > 0 && top[at - 1].Key > composite)
                {
                    top[at] = top[at - 1];
                    at--;
                }

                top[at] = new Ranked(composite, i, score, load);
                filled++;
            }
        }

        Filled = filled;
        Candidates = candidates;
        SawFull = sawFull;
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
