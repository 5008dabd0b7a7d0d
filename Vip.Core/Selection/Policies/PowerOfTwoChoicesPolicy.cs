namespace Vip.Selection.Policies;

/// <summary>
/// Power of two choices: candidates are ranked in a random order (within a preference tier when preferences
/// rank first); of the first two, the less loaded one wins. The rest of the short list stays random, which is
/// what alternatives should be.
/// </summary>
internal sealed class PowerOfTwoChoicesPolicy : ISelectionPolicy
{
    public void Rank(ref CandidateScan scan) => scan.Run(new RandomKey(scan.Seed ^ 0x5DEECE66DUL), randomTies: true);

    public void Settle(ref CandidateScan scan, bool commit)
    {
        if (scan.Filled < 2)
        {
            return;
        }

        Ranked a = scan.Top[0];
        Ranked b = scan.Top[1];
        bool swap = scan.ScoreFirst && a.Score != b.Score
            ? b.Score > a.Score
            : b.Load < a.Load || (b.Load == a.Load && b.Score > a.Score);
        if (swap)
        {
            scan.Top[0] = b;
            scan.Top[1] = a;
        }
    }

    private readonly struct RandomKey(ulong seed) : IRankKey
    {
        public uint Key(int index, uint load) => (uint)(PolicyHash.Random(seed, index) >> 32);
    }
}
