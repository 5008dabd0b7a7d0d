using System.Runtime.CompilerServices;

namespace Vip.Selection;

/// <summary>How a decision ended. The non-zero values equal the REJECT codes of <c>docs/protocol.md</c>.</summary>
public enum SelectionOutcome
{
    /// <summary>A server was chosen: answer REDIRECT.</summary>
    Selected = 0,

    /// <summary>No up server matches the requirement and the bindings (REJECT 1).</summary>
    NoMatchingServer = 1,

    /// <summary>Matching up servers exist but every one is at capacity (REJECT 2).</summary>
    Overloaded = 2,

    /// <summary>The client id has no record and unknown clients are refused (REJECT 3).</summary>
    UnknownClient = 3,

    /// <summary>The requirement (or the task attributes) are invalid; <see cref="SelectionResult.Message"/> says where (REJECT 4).</summary>
    Malformed = 4,
}

/// <summary>
/// The result of one decision: the chosen server and ranked alternatives, or the reason there is none with a
/// suggested retry-after. A value type holding only references to existing objects: producing it allocates nothing.
/// </summary>
public readonly struct SelectionResult
{
    /// <summary>Most alternatives a result carries (REDIRECT's <c>altCount</c> cap).</summary>
    public const int MaxAlternatives = 8;

    private readonly Alternatives _alternatives;

    internal SelectionResult(SelectionOutcome outcome, string? message, int errorPosition, TimeSpan retryAfter)
    {
        Outcome = outcome;
        Message = message;
        ErrorPosition = errorPosition;
        RetryAfter = retryAfter;
        ServerIndex = -1;
    }

    internal SelectionResult(ServerSet set, int index, ReadOnlySpan<int> alternatives)
    {
        Outcome = SelectionOutcome.Selected;
        Snapshot = set;
        ServerIndex = index;
        Server = set[index];
        ErrorPosition = -1;
        AlternativeCount = alternatives.Length;
        for (int i = 0; i < alternatives.Length; i++)
        {
            _alternatives[i] = set[alternatives[i]];
        }
    }

    /// <summary>How the decision ended.</summary>
    public SelectionOutcome Outcome { get; }

    /// <summary>True when a server was chosen.</summary>
    public bool IsSelected => Outcome == SelectionOutcome.Selected;

    /// <summary>The chosen server; null unless <see cref="IsSelected"/>.</summary>
    public ServerEntry? Server { get; }

    /// <summary>Index of the chosen server in <see cref="Snapshot"/>; -1 when none.</summary>
    public int ServerIndex { get; }

    /// <summary>The server snapshot the decision used; null when none was chosen.</summary>
    public ServerSet? Snapshot { get; }

    /// <summary>Number of ranked alternatives (0 to <see cref="SelectionOptions.MaxAlternatives"/>).</summary>
    public int AlternativeCount { get; }

    /// <summary>The alternative ranked <paramref name="index"/> (0 = the best after the chosen server).</summary>
    /// <param name="index">0 to <see cref="AlternativeCount"/> - 1.</param>
    /// <returns>The server.</returns>
    public ServerEntry GetAlternative(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, AlternativeCount);
        return _alternatives[index]!;
    }

    /// <summary>Suggested wait before retrying (REJECT's <c>retryAfterMs</c>); zero when retrying will not help or a server was chosen.</summary>
    public TimeSpan RetryAfter { get; }

    /// <summary>Why there is no server (for REJECT's message), e.g. <c>expected ')' at 14</c>; null when selected.</summary>
    public string? Message { get; }

    /// <summary>For a malformed requirement, the 0-based position of the error; -1 otherwise.</summary>
    public int ErrorPosition { get; }

    [InlineArray(MaxAlternatives)]
    private struct Alternatives
    {
        private ServerEntry? _element;
    }
}
