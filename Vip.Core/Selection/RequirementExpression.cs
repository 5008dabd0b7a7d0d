using System.Collections.Immutable;
using System.Text;

namespace Vip.Selection;

/// <summary>
/// A parsed requirement expression: filter terms joined by AND, plus weighted preferences. Immutable and
/// safe to share between threads; obtain one from <see cref="RequirementParser"/> or <see cref="RequirementCache"/>.
/// </summary>
public sealed class RequirementExpression
{
    /// <summary>The expression with no terms (an empty requirement): every server matches, nothing is preferred.</summary>
    public static RequirementExpression Empty { get; } = new(string.Empty, []);

    internal RequirementExpression(string text, ImmutableArray<RequirementTerm> terms)
    {
        Text = text;
        Terms = terms;
        int filters = 0;
        foreach (RequirementTerm t in terms)
        {
            if (!t.IsPreference)
            {
                filters++;
            }
        }

        FilterCount = filters;
        PreferenceCount = terms.Length - filters;
    }

    /// <summary>The text the expression was parsed from.</summary>
    public string Text { get; }

    /// <summary>All terms in the order written.</summary>
    public ImmutableArray<RequirementTerm> Terms { get; }

    /// <summary>Number of filter terms (terms without a weight).</summary>
    public int FilterCount { get; }

    /// <summary>Number of preference terms (terms with a weight).</summary>
    public int PreferenceCount { get; }

    /// <summary>True when a server with these attributes passes every filter term.</summary>
    /// <param name="attributes">The server's attributes.</param>
    /// <returns>True when every filter term is satisfied.</returns>
    public bool Matches(IReadOnlyDictionary<string, string> attributes)
    {
        foreach (RequirementTerm t in Terms)
        {
            if (!t.IsPreference && !t.IsSatisfiedBy(attributes))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Sum of the weights of the preference terms this server satisfies.</summary>
    /// <param name="attributes">The server's attributes.</param>
    /// <returns>The preference score (0 when none is satisfied).</returns>
    public int PreferenceScore(IReadOnlyDictionary<string, string> attributes)
    {
        int score = 0;
        foreach (RequirementTerm t in Terms)
        {
            if (t.IsPreference && t.IsSatisfiedBy(attributes))
            {
                score += t.Weight;
            }
        }

        return score;
    }

    /// <summary>The expression in canonical form (terms joined by <c>", "</c>); parsing it gives the same terms.</summary>
    /// <returns>The canonical text.</returns>
    public override string ToString()
    {
        var sb = new StringBuilder();
        for (int i = 0; i < Terms.Length; i++)
        {
            if (i > 0)
            {
                sb.Append(", ");
            }

            Terms[i].AppendTo(sb);
        }

        return sb.ToString();
    }
}
