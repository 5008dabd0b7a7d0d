namespace Vip.Selection.Policies;

/// <summary>Lowest (active + issued) ÷ capacity first; ties fall to the preference score, then chance.</summary>
internal sealed class LeastLoadPolicy : ISelectionPolicy
{
    public void Rank(ref CandidateScan scan) => scan.Run(default(LoadKey), randomTies: true);

    public void Settle(ref CandidateScan scan, bool commit)
    {
    }

    /// <summary>The load key itself (the short lists rank by it too).</summary>
    internal readonly struct LoadKey : IRankKey
    {
        public uint Key(int index, uint load) => load;
    }
}
