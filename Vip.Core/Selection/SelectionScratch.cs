using Vip.Selection.Policies;

namespace Vip.Selection;

/// <summary>
/// Per-thread working memory of a decision. Arrays grow with the largest snapshot seen and are then reused,
/// so a steady stream of decisions allocates nothing. A decision never awaits, so a thread-static is safe.
/// </summary>
internal sealed class SelectionScratch
{
    [ThreadStatic]
    private static SelectionScratch? t_current;

    public ulong[] Mask = [];
    public Candidate[] Candidates = [];
    public uint[] Keys = [];
    public Probe[] Probes = new Probe[64];
    public readonly Ranked[] Top = new Ranked[1 + SelectionResult.MaxAlternatives];
    public readonly int[] Alternatives = new int[SelectionResult.MaxAlternatives];

    // Results of the last decision, read by explain.
    public int CandidateCount;
    public int TopCount;

    public static SelectionScratch For(ServerSet set, int probes)
    {
        SelectionScratch s = t_current ??= new SelectionScratch();
        if (s.Mask.Length < set.WordCount)
        {
            s.Mask = new ulong[set.WordCount];
        }

        if (s.Candidates.Length < set.Count)
        {
            s.Candidates = new Candidate[set.Count];
            s.Keys = new uint[set.Count];
        }

        if (s.Probes.Length < probes)
        {
            s.Probes = new Probe[probes];
        }

        s.CandidateCount = 0;
        s.TopCount = 0;
        return s;
    }
}
