using System.Collections.Immutable;
using System.Globalization;
using System.Text;

namespace Vip.Selection;

/// <summary>
/// One term of a requirement expression: a predicate on one server attribute, either a filter
/// (<see cref="Weight"/> is 0) or a weighted preference (<c>region=eu:50</c>). Immutable.
/// </summary>
public sealed class RequirementTerm
{
    internal RequirementTerm(string key, RequirementOperator op, ImmutableArray<string> values, double number, int weight, int position)
    {
        Key = key;
        Operator = op;
        Values = values;
        Number = number;
        Weight = weight;
        Position = position;
    }

    /// <summary>The attribute key the term looks at.</summary>
    public string Key { get; }

    /// <summary>The comparison.</summary>
    public RequirementOperator Operator { get; }

    /// <summary>
    /// The operand(s) as written: one value for <c>=</c>, <c>!=</c> and the numeric operators, the list for
    /// <c>in</c>/<c>notin</c>, none for exists/absent.
    /// </summary>
    public ImmutableArray<string> Values { get; }

    /// <summary>The numeric operand of <c>&gt;</c>, <c>&gt;=</c>, <c>&lt;</c>, <c>&lt;=</c>; <see cref="double.NaN"/> otherwise.</summary>
    public double Number { get; }

    /// <summary>0 for a filter; 1 to the configured maximum for a preference.</summary>
    public int Weight { get; }

    /// <summary>True when the term is a soft preference (it carries a weight) rather than a filter.</summary>
    public bool IsPreference => Weight > 0;

    /// <summary>0-based position of the term in the requirement text.</summary>
    public int Position { get; }

    /// <summary>True for the four numeric comparisons.</summary>
    public bool IsNumeric => Operator is RequirementOperator.GreaterThan or RequirementOperator.GreaterOrEqual
        or RequirementOperator.LessThan or RequirementOperator.LessOrEqual;

    /// <summary>
    /// Evaluates the predicate (ignoring the weight) against a server's attributes. This is the reference
    /// semantics; the selector evaluates the same predicates over its attribute index.
    /// </summary>
    /// <param name="attributes">The server's attributes.</param>
    /// <returns>True when the server satisfies the predicate.</returns>
    public bool IsSatisfiedBy(IReadOnlyDictionary<string, string> attributes)
    {
        ArgumentNullException.ThrowIfNull(attributes);
        bool has = attributes.TryGetValue(Key, out string? value);
        switch (Operator)
        {
            case RequirementOperator.Equal: return has && string.Equals(value, Values[0], StringComparison.Ordinal);
            case RequirementOperator.NotEqual: return !has || !string.Equals(value, Values[0], StringComparison.Ordinal);
            case RequirementOperator.In: return has && Contains(Values, value!);
            case RequirementOperator.NotIn: return !has || !Contains(Values, value!);
            case RequirementOperator.Exists: return has;
            case RequirementOperator.Absent: return !has;
            default:
                return has && RequirementNumber.TryParse(value, out double n) && CompareNumber(n);
        }
    }

    internal bool CompareNumber(double n) => Operator switch
    {
        RequirementOperator.GreaterThan => n > Number,
        RequirementOperator.GreaterOrEqual => n >= Number,
        RequirementOperator.LessThan => n < Number,
        RequirementOperator.LessOrEqual => n <= Number,
        _ => false,
    };

    private static bool Contains(ImmutableArray<string> values, string value)
    {
        foreach (string v in values)
        {
            if (string.Equals(v, value, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The term in canonical form, e.g. <c>tier in (gold,silver)</c> or <c>region=eu:50</c>.</summary>
    /// <returns>The canonical text.</returns>
    public override string ToString()
    {
        var sb = new StringBuilder();
        AppendTo(sb);
        return sb.ToString();
    }

    internal void AppendTo(StringBuilder sb)
    {
        switch (Operator)
        {
            case RequirementOperator.Exists: sb.Append(Key); break;
            case RequirementOperator.Absent: sb.Append('!').Append(Key); break;
            case RequirementOperator.In:
            case RequirementOperator.NotIn:
                sb.Append(Key).Append(Operator == RequirementOperator.In ? " in (" : " notin (");
                sb.AppendJoin(',', Values);
                sb.Append(')');
                break;
            default:
                sb.Append(Key).Append(Operator switch
                {
                    RequirementOperator.Equal => "=",
                    RequirementOperator.NotEqual => "!=",
                    RequirementOperator.GreaterThan => ">",
                    RequirementOperator.GreaterOrEqual => ">=",
                    RequirementOperator.LessThan => "<",
                    _ => "<=",
                }).Append(Values[0]);
                break;
        }

        if (Weight > 0)
        {
            sb.Append(':').Append(Weight.ToString(CultureInfo.InvariantCulture));
        }
    }
}
