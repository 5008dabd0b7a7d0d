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
    public ulong[] Preference0 = [];
    public ulong[] Preference1 = [];
    public ulong[] Tier = [];
    public Probe[] Probes = new Probe[64];
    public readonly char[] Chars = new char[256];
    public readonly Ranked[] Top = new Ranked[1 + SelectionResult.MaxAlternatives];
    public readonly int[] Alternatives = new int[SelectionResult.MaxAlternatives];

    /// <summary>The bitmaps whose AND is a decision's candidate set.</summary>
    public ulong[][] Parts = new ulong[8][];

    /// <summary>This thread's least-load short lists, by query hash (direct-mapped; a collision rebuilds).</summary>
    public readonly ShortList?[] ShortLists = new ShortList?[16];

    public static SelectionScratch For(ServerSet set, int probes, int parts)
    {
        SelectionScratch s = t_current ??= new SelectionScratch();
        if (s.Parts.Length < parts)
        {
            s.Parts = new ulong[parts][];
        }

        if (s.Mask.Length < set.WordCount)
        {
            s.Mask = new ulong[set.WordCount];
            s.Preference0 = new ulong[set.WordCount];
            s.Preference1 = new ulong[set.WordCount];
            s.Tier = new ulong[set.WordCount];
        }

        if (s.Probes.Length < probes)
        {
            s.Probes = new Probe[probes];
        }

        return s;
    }
}
