using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Vip.Selection;

/// <summary>
/// A requirement expression is not valid. <see cref="Exception.Message"/> reads like <c>expected ')' at 14</c>;
/// the tier-2 daemon answers it with REJECT <c>Malformed</c> carrying that message.
/// </summary>
public sealed class RequirementSyntaxException : FormatException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="position">0-based character position of the problem.</param>
    /// <param name="reason">What was wrong, without the position (e.g. <c>expected ')'</c>).</param>
    public RequirementSyntaxException(int position, string reason)
        : base(Format(position, reason))
    {
        Position = position;
        Reason = reason;
    }

    /// <summary>Creates the exception with a message only (position 0).</summary>
    public RequirementSyntaxException()
        : this(0, "invalid requirement")
    {
    }

    /// <summary>Creates the exception with a reason at position 0.</summary>
    /// <param name="message">What was wrong.</param>
    public RequirementSyntaxException(string message)
        : this(0, message)
    {
    }

    /// <summary>Creates the exception with a reason at position 0 and an inner exception.</summary>
    /// <param name="message">What was wrong.</param>
    /// <param name="innerException">The cause.</param>
    public RequirementSyntaxException(string message, Exception innerException)
        : base(Format(0, message), innerException)
    {
        Reason = message;
    }

    /// <summary>0-based character position of the problem in the requirement text.</summary>
    public int Position { get; }

    /// <summary>What was wrong, without the position.</summary>
    public string Reason { get; } = string.Empty;

    internal static string Format(int position, string reason) =>
        string.Create(CultureInfo.InvariantCulture, $"{reason} at {position}");

    [DoesNotReturn]
    internal static void Throw(RequirementError error) => throw new RequirementSyntaxException(error.Position, error.Reason);
}

/// <summary>A parse failure kept as data, so a cached bad requirement costs no exception.</summary>
internal sealed class RequirementError
{
    public RequirementError(int position, string reason)
    {
        Position = position;
        Reason = reason;
        Message = RequirementSyntaxException.Format(position, reason);
    }

    public int Position { get; }

    public string Reason { get; }

    public string Message { get; }
}
