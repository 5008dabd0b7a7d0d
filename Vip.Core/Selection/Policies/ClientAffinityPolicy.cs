namespace Vip.Selection.Policies;

/// <summary>
/// Rendezvous (highest random weight) hashing of the client id over the candidates: the same client keeps
/// getting the same server while that server is a candidate, and when it leaves only its clients move.
/// The hash is stable across processes, so every tier-2 daemon picks alike.
/// </summary>
internal sealed class ClientAffinityPolicy : ISelectionPolicy
{
    public void Keys(in RankInput input, ReadOnlySpan<Candidate> candidates, Span<uint> keys)
    {
        for (int i = 0; i < candidates.Length; i++)
        {
            keys[i] = ~(uint)(PolicyHash.Mix(input.ClientHash ^ candidates[i].Live.IdHash) >> 32);
        }
    }

    public void Settle(in RankInput input, Span<Ranked> top, ReadOnlySpan<Candidate> candidates, bool commit)
    {
    }
}
