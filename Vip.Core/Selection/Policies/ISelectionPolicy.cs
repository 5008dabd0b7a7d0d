namespace Vip.Selection.Policies;

/// <summary>
/// A ranking policy: gives each candidate a key (lower ranks first), and settles the short list once the
/// best few are known. Preference scores and random tie-breaking are combined with the key by the selector.
/// </summary>
internal interface ISelectionPolicy
{
    /// <summary>Writes the policy key of each candidate (lower is better).</summary>
    void Keys(in RankInput input, ReadOnlySpan<Candidate> candidates, Span<uint> keys);

    /// <summary>
    /// Reorders the head of the ranked short list if the policy needs a second look, and records the choice
    /// (<c>top[0]</c>) when <paramref name="commit"/> is true (false for explain's dry run).
    /// </summary>
    void Settle(in RankInput input, Span<Ranked> top, ReadOnlySpan<Candidate> candidates, bool commit);
}

/// <summary>Per-decision inputs of a policy.</summary>
internal readonly record struct RankInput(ulong Seed, ulong ClientHash, PreferenceMode Mode);

/// <summary>A server that passed every filter: its index in the snapshot, preference score and current use.</summary>
internal readonly record struct Candidate(int Index, int Score, int Used, ServerLive Live)
{
    /// <summary>Load as a 32-bit fraction of capacity: (active + issued) ÷ capacity × 2^32.</summary>
    public uint LoadKey => (uint)Math.Min(Used * Live.LoadScale, uint.MaxValue);
}

/// <summary>One entry of the short list: composite key (score, policy key, tie) and the candidate slot.</summary>
internal record struct Ranked(ulong Key, int Slot);

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
        byte[]? big = n > buffer.Length ? new byte[n] : null;
        Span<byte> bytes = big ?? buffer;
        int written = System.Text.Encoding.UTF8.GetBytes(s, bytes);
        return Stable(bytes[..written]);
    }
}
