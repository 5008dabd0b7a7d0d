namespace Vip.Selection.Policies;

/// <summary>
/// Power of two choices: candidates are ranked in a random order (within a preference tier when preferences
/// rank first); of the first two, the less loaded one wins. The rest of the short list stays random, which is
/// what the alternatives should be.
/// </summary>
internal sealed class PowerOfTwoChoicesPolicy : ISelectionPolicy
{
    public void Keys(in RankInput input, ReadOnlySpan<Candidate> candidates, Span<uint> keys)
    {
        for (int i = 0; i < candidates.Length; i++)
        {
            keys[i] = (uint)(PolicyHash.Random(input.Seed ^ 0x5DEECE66DUL, candidates[i].Index) >> 32);
        }
    }

    public void Settle(in RankInput input, Span<Ranked> top, ReadOnlySpan<Candidate> candidates, bool commit)
    {
        if (top.Length < 2)
        {
            return;
        }

        Candidate a = candidates[top[0].Slot];
        Candidate b = candidates[top[1].Slot];
        bool swap = input.Mode == PreferenceMode.ScoreFirst && a.Score != b.Score
            ? b.Score > a.Score
            : b.LoadKey < a.LoadKey || (b.LoadKey == a.LoadKey && b.Score > a.Score);
        if (swap)
        {
            (top[0], top[1]) = (top[1], top[0]);
        }
    }
}
