using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Vip.Selection;

/// <summary>
/// Parses requirement expressions (grammar in <c>docs/selection.md</c>):
/// <code>
/// requirement := ws [ term { ws "," ws term } ] ws
/// term        := predicate [ ws ":" ws weight ]
/// predicate   := "!" ws name | name ws ("in" | "notin") ws list | name ws cmp ws value | name
/// cmp         := "=" | "!=" | "&gt;" | "&gt;=" | "&lt;" | "&lt;="
/// list        := "(" ws value { ws "," ws value } ws ")"
/// </code>
/// </summary>
public static class RequirementParser
{
    /// <summary>Parses a requirement, throwing on a syntax error.</summary>
    /// <param name="text">The requirement text; empty or blank means "no requirement".</param>
    /// <param name="limits">Caps; <see cref="RequirementLimits.Default"/> when null.</param>
    /// <returns>The parsed, immutable expression.</returns>
    /// <exception cref="RequirementSyntaxException">The text is not a valid requirement; the exception says where.</exception>
    public static RequirementExpression Parse(string text, RequirementLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!TryParse(text, text, limits ?? RequirementLimits.Default, out RequirementExpression? expression, out RequirementError? error))
        {
            RequirementSyntaxException.Throw(error);
        }

        return expression;
    }

    /// <summary>Parses a requirement without throwing.</summary>
    /// <param name="text">The requirement text.</param>
    /// <param name="limits">Caps; <see cref="RequirementLimits.Default"/> when null.</param>
    /// <param name="expression">The expression, when valid.</param>
    /// <param name="error">The syntax error (with position), when invalid.</param>
    /// <returns>True when the text is a valid requirement.</returns>
    public static bool TryParse(
        string text,
        RequirementLimits? limits,
        [NotNullWhen(true)] out RequirementExpression? expression,
        [NotNullWhen(false)] out RequirementSyntaxException? error)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (TryParse(text, text, limits ?? RequirementLimits.Default, out expression, out RequirementError? e))
        {
            error = null;
            return true;
        }

        error = new RequirementSyntaxException(e.Position, e.Reason);
        return false;
    }

    /// <summary>The core parser; <paramref name="source"/> is the string form of <paramref name="text"/> when the caller has one.</summary>
    internal static bool TryParse(
        ReadOnlySpan<char> text,
        string? source,
        RequirementLimits limits,
        [NotNullWhen(true)] out RequirementExpression? expression,
        [NotNullWhen(false)] out RequirementError? error)
    {
        var p = new Parser(text, limits);
        ImmutableArray<RequirementTerm> terms = p.Run(out error);
        if (error is not null)
        {
            expression = null;
            return false;
        }

        expression = terms.IsEmpty ? RequirementExpression.Empty : new RequirementExpression(source ?? text.ToString(), terms);
        return true;
    }

    /// <summary>True for the characters a key or a value may contain: ASCII letters, digits and <c>_ - . / @ +</c>.</summary>
    /// <param name="c">The character.</param>
    /// <returns>True when <paramref name="c"/> may appear in a name or value.</returns>
    public static bool IsNameChar(char c) =>
        char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' or '/' or '@' or '+';

    private ref struct Parser
    {
        private readonly ReadOnlySpan<char> _s;
        private readonly RequirementLimits _limits;
        private int _pos;
        private RequirementError? _error;

        public Parser(ReadOnlySpan<char> s, RequirementLimits limits)
        {
            _s = s;
            _limits = limits;
        }

        public ImmutableArray<RequirementTerm> Run(out RequirementError? error)
        {
            error = null;
            if (_s.Length > _limits.MaxLength)
            {
                error = new RequirementError(_limits.MaxLength, string.Create(CultureInfo.InvariantCulture, $"requirement longer than {_limits.MaxLength} characters"));
                return default;
            }

            SkipWs();
            if (_pos == _s.Length)
            {
                return [];
            }

            var terms = ImmutableArray.CreateBuilder<RequirementTerm>();
            while (true)
            {
                if (terms.Count == _limits.MaxTerms)
                {
                    Fail(_pos, string.Create(CultureInfo.InvariantCulture, $"more than {_limits.MaxTerms} terms"));
                    break;
                }

                RequirementTerm? term = Term();
                if (term is null)
                {
                    break;
                }

                terms.Add(term);
                SkipWs();
                if (_pos == _s.Length)
                {
                    break;
                }

                if (_s[_pos] != ',')
                {
                    Fail(_pos, "expected ',' or end of requirement");
                    break;
                }

                _pos++;
                SkipWs();
            }

            error = _error;
            return _error is null ? terms.ToImmutable() : default;
        }

        private RequirementTerm? Term()
        {
            int start = _pos;
            RequirementTerm? term;
            if (Peek() == '!')
            {
                _pos++;
                SkipWs();
                string? key = Name("a key");
                if (key is null)
                {
                    return null;
                }

                term = Weighted(key, RequirementOperator.Absent, [], double.NaN, start);
                return term;
            }

            string? name = Name("a key");
            if (name is null)
            {
                return null;
            }

            int afterName = _pos;
            SkipWs();
            char c = Peek();
            switch (c)
            {
                case '=':
                    _pos++;
                    return Compare(name, RequirementOperator.Equal, start);
                case '!':
                    if (Peek(1) != '=')
                    {
                        Fail(_pos + 1, "expected '='");
                        return null;
                    }

                    _pos += 2;
                    return Compare(name, RequirementOperator.NotEqual, start);
                case '>':
                case '<':
                    bool eq = Peek(1) == '=';
                    _pos += eq ? 2 : 1;
                    RequirementOperator op = c == '>'
                        ? (eq ? RequirementOperator.GreaterOrEqual : RequirementOperator.GreaterThan)
                        : (eq ? RequirementOperator.LessOrEqual : RequirementOperator.LessThan);
                    return Compare(name, op, start);
                default:
                    if (IsNameChar(c) && _pos > afterName)
                    {
                        int kw = _pos;
                        string? word = Name("an operator");
                        if (word is null)
                        {
                            return null;
                        }

                        RequirementOperator listOp;
                        if (word.Equals("in", StringComparison.OrdinalIgnoreCase))
                        {
                            listOp = RequirementOperator.In;
                        }
                        else if (word.Equals("notin", StringComparison.OrdinalIgnoreCase))
                        {
                            listOp = RequirementOperator.NotIn;
                        }
                        else
                        {
                            Fail(kw, "expected 'in', 'notin', an operator, ',' or end of requirement");
                            return null;
                        }

                        return List(name, listOp, start);
                    }

                    // A bare key: the exists test. Put the cursor back before any trailing blanks.
                    _pos = afterName;
                    return Weighted(name, RequirementOperator.Exists, [], double.NaN, start);
            }
        }

        private RequirementTerm? Compare(string key, RequirementOperator op, int start)
        {
            SkipWs();
            int at = _pos;
            string? value = Name(op is RequirementOperator.Equal or RequirementOperator.NotEqual ? "a value" : "a number");
            if (value is null)
            {
                return null;
            }

            double number = double.NaN;
            if (op is not (RequirementOperator.Equal or RequirementOperator.NotEqual))
            {
                if (!RequirementNumber.TryParse(value, out number))
                {
                    Fail(at, "expected a number");
                    return null;
                }
            }

            return Weighted(key, op, [value], number, start);
        }

        private RequirementTerm? List(string key, RequirementOperator op, int start)
        {
            SkipWs();
            if (Peek() != '(')
            {
                Fail(_pos, "expected '('");
                return null;
            }

            _pos++;
            var items = ImmutableArray.CreateBuilder<string>();
            while (true)
            {
                SkipWs();
                if (items.Count == _limits.MaxListItems)
                {
                    Fail(_pos, string.Create(CultureInfo.InvariantCulture, $"more than {_limits.MaxListItems} list items"));
                    return null;
                }

                string? v = Name("a value");
                if (v is null)
                {
                    return null;
                }

                items.Add(v);
                SkipWs();
                char c = Peek();
                if (c == ',')
                {
                    _pos++;
                    continue;
                }

                if (c == ')')
                {
                    _pos++;
                    break;
                }

                Fail(_pos, "expected ')'");
                return null;
            }

            return Weighted(key, op, items.ToImmutable(), double.NaN, start);
        }

        private RequirementTerm? Weighted(string key, RequirementOperator op, ImmutableArray<string> values, double number, int start)
        {
            int save = _pos;
            SkipWs();
            if (Peek() != ':')
            {
                _pos = save;
                return new RequirementTerm(key, op, values, number, 0, start);
            }

            _pos++;
            SkipWs();
            int at = _pos;
            int weight = 0;
            while (_pos < _s.Length && char.IsAsciiDigit(_s[_pos]))
            {
                if (weight <= _limits.MaxWeight)
                {
                    weight = (weight * 10) + (_s[_pos] - '0');
                }

                _pos++;
            }

            if (_pos == at)
            {
                Fail(at, "expected a weight");
                return null;
            }

            if (weight < 1 || weight > _limits.MaxWeight)
            {
                Fail(at, string.Create(CultureInfo.InvariantCulture, $"weight must be 1 to {_limits.MaxWeight}"));
                return null;
            }

            return new RequirementTerm(key, op, values, number, weight, start);
        }

        private string? Name(string what)
        {
            int start = _pos;
            while (_pos < _s.Length && IsNameChar(_s[_pos]))
            {
                _pos++;
            }

            if (_pos == start)
            {
                if (start == _s.Length)
                {
                    Fail(start, "expected " + what);
                }
                else
                {
                    char c = _s[start];
                    Fail(start, char.IsAsciiLetterOrDigit(c) || (c >= ' ' && c < 127)
                        ? $"expected {what}, found '{c}'"
                        : $"expected {what}, found U+{(int)c:X4}");
                }

                return null;
            }

            return _s[start.._pos].ToString();
        }

        private void SkipWs()
        {
            while (_pos < _s.Length && _s[_pos] is ' ' or '\t')
            {
                _pos++;
            }
        }

        private readonly char Peek(int ahead = 0) => _pos + ahead < _s.Length ? _s[_pos + ahead] : '\0';

        private void Fail(int position, string reason) => _error ??= new RequirementError(position, reason);
    }
}
