using System.Numerics;

namespace Vip.Selection.Policies;

/// <summary>
/// Power of two choices: candidates are drawn in a random order (from the best preference tier when preferences
/// rank first); of the first two, the less loaded one wins. The rest of the short list stays random, which is
/// what alternatives should be. The draws sample the candidate bitmap directly — a count per word, then a random
/// rank — so a decision reads a few rank words, not every candidate's; when draws keep landing on servers that are
/// down or full, or there are too few candidates to draw from, it walks them all instead (the same answer in law).
/// </summary>
internal sealed class PowerOfTwoChoicesPolicy : ISelectionPolicy
{
    /// <summary>Draws that may land on a non-candidate before the walk takes over.</summary>
    private const int MissesAllowed = 8;

    public void Rank(ref CandidateScan scan)
    {
        if (!TrySample(ref scan))
        {
            scan.Run(new RandomKey(scan.Seed ^ 0x5DEECE66DUL), randomTies: true);
        }
    }

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

    /// <summary>Fills the short list with distinct random candidates of the best tier; false when the walk must decide.</summary>
    private static bool TrySample(ref CandidateScan scan)
    {
        int wanted = scan.Top.Length;
        bool tiers = scan.ScoreFirst && scan.Probes.Length > 0;
        if (tiers && scan.Probes.Length > 2)
        {
            // Ranked first by more than two preferences: the walk scores those.
            return false;
        }

        // The set to draw from: every candidate (preferences, if any, only break load ties); or, with preferences
        // ranked first, the servers meeting the most weight among the candidates.
        ReadOnlySpan<ulong> draw = scan.Mask;
        if (tiers)
        {
            if (!BestTier(ref scan, scan.Scratch2))
            {
                return false;
            }

            draw = scan.Scratch2;
        }

        int total = Bits.Count(draw);
        if (total < 2 * wanted)
        {
            // Few candidates: rejection draws would mostly repeat themselves.
            return false;
        }

        int misses = 0;
        int filled = 0;
        ulong seed = scan.Seed ^ 0xA24BAED4963EE407UL;
        for (int n = 0; filled < wanted; n++)
        {
            int i = Select(draw, (int)(PolicyHash.Random(seed, n) % (ulong)total));
            ulong rank = scan.RankOf(i);
            bool repeat = false;
            for (int k = 0; k < filled; k++)
            {
                repeat |= scan.Top[k].Index == i;
            }

            if (repeat || !CandidateScan.IsCandidate(rank, scan.HeardSince))
            {
                if (++misses > MissesAllowed)
                {
                    return false;
                }

                continue;
            }

            scan.Top[filled++] = new Ranked(i, scan.ScoreOf(i), RankWord.Key(rank));
        }

        scan.Filled = filled;
        scan.SawFull = false;
        return true;
    }

    /// <summary>Writes the candidates of the best non-empty preference tier into <paramref name="tier"/>; false when there are none.</summary>
    private static bool BestTier(ref CandidateScan scan, Span<ulong> tier)
    {
        ReadOnlySpan<ulong> mask = scan.Mask;
        ReadOnlySpan<ulong> pref0 = scan.Probes[0].Words(scan.Scratch0, out ulong flip0);
        int weight0 = scan.Probes[0].Weight;
        ReadOnlySpan<ulong> pref1 = mask;
        ulong flip1 = ulong.MaxValue;   // no second preference: nobody meets it
        int weight1 = 0;
        if (scan.Probes.Length > 1)
        {
            pref1 = scan.Probes[1].Words(scan.Scratch1, out flip1);
            weight1 = scan.Probes[1].Weight;
        }

        // Tiers by score, best first: both, the heavier alone, the lighter alone, none.
        for (int t = 0; t < 4; t++)
        {
            // t = 0: both; 1: the heavier alone; 2: the lighter alone; 3: none.
            bool heavierIs0 = weight0 >= weight1;
            int m0 = t == 0 || (t == 1 && heavierIs0) || (t == 2 && !heavierIs0) ? 1 : 0;
            int m1 = t == 0 || (t == 1 && !heavierIs0) || (t == 2 && heavierIs0) ? 1 : 0;
            bool any = false;
            for (int w = 0; w < mask.Length; w++)
            {
                ulong h0 = pref0[w] ^ flip0;
                ulong h1 = pref1[w] ^ flip1;
                ulong bits = mask[w] & (m0 == 1 ? h0 : ~h0) & (m1 == 1 ? h1 : ~h1);
                tier[w] = bits;
                any |= bits != 0;
            }

            if (any)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The index of the <paramref name="rank"/>-th set bit (from 0) of a bitmap.</summary>
    private static int Select(ReadOnlySpan<ulong> bits, int rank)
    {
        for (int w = 0; ; w++)
        {
            int count = BitOperations.PopCount(bits[w]);
            if (rank < count)
            {
                ulong word = bits[w];
                for (; rank > 0; rank--)
                {
                    word &= word - 1;
                }

                return (w << 6) + BitOperations.TrailingZeroCount(word);
            }

            rank -= count;
        }
    }

    private readonly struct RandomKey(ulong seed) : IRankKey
    {
        public uint Key(int index, uint load) => (uint)(PolicyHash.Random(seed, index) >> 32);
    }
}
