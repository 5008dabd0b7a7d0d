namespace Vip.Selection;

/// <summary>
/// A requirement bound to one <see cref="ServerSet"/>: the filter terms folded into one bitmap of the servers
/// that pass them all, and the preferences as membership probes. Built once per (requirement, snapshot) and
/// kept on the cache entry, so a decision only ANDs a few prepared bitmaps.
/// </summary>
internal sealed class CompiledRequirement
{
    private CompiledRequirement(ServerSet set, ulong[]? filter, Probe[] preferences)
    {
        Set = set;
        Filter = filter;
        Preferences = preferences;
    }

    public ServerSet Set { get; }

    /// <summary>Servers passing every filter term; null when the requirement has no filter term.</summary>
    public ulong[]? Filter { get; }

    public Probe[] Preferences { get; }

    public static CompiledRequirement Compile(RequirementExpression expression, ServerSet set)
    {
        ulong[]? filter = null;
        var prefs = new List<Probe>();
        foreach (RequirementTerm term in expression.Terms)
        {
            if (term.IsPreference)
            {
                prefs.Add(ProbeFor(term, set));
                continue;
            }

            ulong[] bits = TermBits(term, set);
            if (filter is null)
            {
                filter = bits;
            }
            else
            {
                Bits.And(filter, bits);
            }
        }

        return new CompiledRequirement(set, filter, [.. prefs]);
    }

    private static Probe ProbeFor(RequirementTerm term, ServerSet set)
    {
        KeyIndex? ki = set.Keys.GetValueOrDefault(term.Key);
        return term.Operator switch
        {
            RequirementOperator.Exists => new Probe(ki?.Exists ?? Posting.Empty, null, false, term.Weight),
            RequirementOperator.Absent => new Probe(ki?.Exists ?? Posting.Empty, null, true, term.Weight),
            RequirementOperator.Equal => new Probe(ki?.Get(term.Values[0]) ?? Posting.Empty, null, false, term.Weight),
            RequirementOperator.NotEqual => new Probe(ki?.Get(term.Values[0]) ?? Posting.Empty, null, true, term.Weight),
            _ => new Probe(null, TermBits(term, set), false, term.Weight),
        };
    }

    /// <summary>The servers satisfying one term, as a fresh bitmap.</summary>
    public static ulong[] TermBits(RequirementTerm term, ServerSet set)
    {
        int n = set.Count;
        KeyIndex? ki = set.Keys.GetValueOrDefault(term.Key);
        ulong[] bits;
        switch (term.Operator)
        {
            case RequirementOperator.Exists:
                return ki?.Exists.ToBits(n) ?? new ulong[set.WordCount];
            case RequirementOperator.Absent:
                bits = (ulong[])set.All.Clone();
                if (ki is not null)
                {
                    Bits.AndNot(bits, ki.Exists.ToBits(n));
                }

                return bits;
            case RequirementOperator.Equal:
            case RequirementOperator.In:
                bits = new ulong[set.WordCount];
                if (ki is not null)
                {
                    foreach (string v in term.Values)
                    {
                        ki.Get(v).OrInto(bits);
                    }
                }

                return bits;
            case RequirementOperator.NotEqual:
            case RequirementOperator.NotIn:
                bits = (ulong[])set.All.Clone();
                if (ki is not null)
                {
                    var hit = new ulong[set.WordCount];
                    foreach (string v in term.Values)
                    {
                        ki.Get(v).OrInto(hit);
                    }

                    Bits.AndNot(bits, hit);
                }

                return bits;
            default:
                bits = new ulong[set.WordCount];
                if (ki is not null)
                {
                    foreach ((double number, Posting servers) in ki.Numeric)
                    {
                        if (term.CompareNumber(number))
                        {
                            servers.OrInto(bits);
                        }
                    }
                }

                return bits;
        }
    }
}

/// <summary>A weighted membership test for one preference: a posting (possibly negated) or a bitmap.</summary>
internal readonly struct Probe
{
    private readonly Posting? _posting;
    private readonly ulong[]? _dense;
    private readonly bool _negate;

    public Probe(Posting? posting, ulong[]? dense, bool negate, int weight)
    {
        _posting = posting;
        _dense = dense ?? posting?.Dense;
        _negate = negate;
        Weight = weight;
    }

    public int Weight { get; }

    /// <summary>The preference score of server <paramref name="i"/>: the weights of the probes it satisfies.</summary>
    public static int Score(ReadOnlySpan<Probe> probes, int i)
    {
        int score = 0;
        foreach (ref readonly Probe p in probes)
        {
            score += p.Contains(i) ? p.Weight : 0;
        }

        return score;
    }

    /// <summary>Whether two probes test the same servers with the same weight (the same index objects).</summary>
    public bool SameAs(in Probe other) =>
        ReferenceEquals(_posting, other._posting) && ReferenceEquals(_dense, other._dense) && _negate == other._negate && Weight == other.Weight;

    /// <summary>A hash of what <see cref="SameAs"/> compares.</summary>
    public int IdentityHash() =>
        HashCode.Combine(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(_posting), System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(_dense), _negate, Weight);

    /// <summary>
    /// The preference as one bit per server, XORed with <paramref name="flip"/>: its own bitmap when it has one,
    /// else written into <paramref name="scratch"/> (at least as long as the snapshot's bitmaps).
    /// </summary>
    public ReadOnlySpan<ulong> Words(Span<ulong> scratch, out ulong flip)
    {
        flip = _negate ? ulong.MaxValue : 0;
        if (_dense is { } d)
        {
            return d;
        }

        scratch.Clear();
        if (_posting is { } p)
        {
            foreach (int m in p.Members)
            {
                scratch[m >> 6] |= 1UL << m;
            }
        }

        return scratch;
    }

    /// <summary>Whether server <paramref name="i"/> satisfies the preference.</summary>
    public bool Contains(int i) => ((Word(i >> 6) >> i) & 1) != 0;

    /// <summary>
    /// The servers of bitmap word <paramref name="w"/> (indices 64w to 64w + 63) that satisfy the preference, as
    /// one word: a decision takes it once per word instead of probing once per candidate.
    /// </summary>
    public ulong Word(int w)
    {
        ulong word = _dense is { } d ? d[w] : _posting is { } p ? SparseWord(p.Members, w) : 0;
        return _negate ? ~word : word;
    }

    private static ulong SparseWord(int[] members, int w)
    {
        int first = w << 6;
        int at = Array.BinarySearch(members, first);
        if (at < 0)
        {
            at = ~at;
        }

        ulong word = 0;
        for (; at < members.Length && members[at] < first + 64; at++)
        {
            word |= 1UL << members[at];
        }

        return word;
    }
}
