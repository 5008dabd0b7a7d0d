namespace Vip.Selection.Policies;

/// <summary>Lowest (active + issued) ÷ capacity first; ties fall to the preference score, then chance.</summary>
internal sealed class LeastLoadPolicy : ISelectionPolicy
{
    public void Keys(in RankInput input, ReadOnlySpan<Candidate> candidates, Span<uint> keys)
    {
        for (int i = 0; i < candidates.Length; i++)
        {
            keys[i] = candidates[i].LoadKey;
        }
    }

    public void Settle(in RankInput input, Span<Ranked> top, ReadOnlySpan<Candidate> candidates, bool commit)
    {
    }
}
