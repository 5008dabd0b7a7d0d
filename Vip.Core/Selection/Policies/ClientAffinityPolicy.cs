namespace Vip.Selection.Policies;

/// <summary>
/// Rendezvous (highest random weight) hashing of the client id over the candidates: the same client keeps
/// getting the same server while that server is a candidate, and when it leaves only its clients move.
/// The hash is stable across processes, so every tier-2 daemon picks alike.
/// </summary>
internal sealed class ClientAffinityPolicy : ISelectionPolicy
{
    public void Rank(ref CandidateScan scan) => scan.Run(new RendezvousKey(scan.ClientHash, scan.IdHashes), randomTies: true);

    public void Settle(ref CandidateScan scan, bool commit)
    {
    }

    private readonly struct RendezvousKey(ulong client, ulong[] idHashes) : IRankKey
    {
        public uint Key(int index, uint load) => ~(uint)(PolicyHash.Mix(client ^ idHashes[index]) >> 32);
    }
}
