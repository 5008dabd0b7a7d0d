using System.Net;
using Vip.Protocol;

namespace Vip.Client;

/// <summary>Where a task was assigned: the app server to connect to and the ticket to present (from a REDIRECT).</summary>
/// <param name="ServerId">The app server's id.</param>
/// <param name="Server">The app server's address.</param>
/// <param name="ExpiresAt">When the ticket expires.</param>
/// <param name="Ticket">The signed ticket (opaque to the client).</param>
/// <param name="Alternatives">Ranked alternatives (no ticket: resubmit to use one).</param>
public sealed record Assignment(string ServerId, IPEndPoint Server, DateTimeOffset ExpiresAt, ReadOnlyMemory<byte> Ticket, IReadOnlyList<RedirectAlternative> Alternatives)
{
    /// <summary>Builds the assignment a REDIRECT carries.</summary>
    public static Assignment From(Redirect redirect)
    {
        ArgumentNullException.ThrowIfNull(redirect);
        return new Assignment(redirect.ServerId, redirect.Server.ToIPEndPoint(), DateTimeOffset.FromUnixTimeMilliseconds(redirect.ExpiresUnixMs), redirect.Ticket, redirect.Alternatives);
    }
}

/// <summary>
/// The answer to a submission: an <see cref="Assignment"/> or a <see cref="Reject"/>, never both. Returned by
/// <see cref="VipClient.TrySubmitAsync"/>; <see cref="VipClient.SubmitAsync"/> throws <see cref="VipRejectedException"/> instead.
/// </summary>
/// <param name="Assignment">The assignment, when the task was redirected.</param>
/// <param name="Rejection">The final rejection (after the retries the policy allows), otherwise.</param>
/// <param name="Attempts">How many times the task was sent.</param>
public sealed record SubmitResult(Assignment? Assignment, Reject? Rejection, int Attempts)
{
    /// <summary>True when the task was assigned.</summary>
    public bool IsAssigned => Assignment is not null;
}

/// <summary>What <see cref="VipClient.RunAsync"/> produced: where the task ran and its result.</summary>
/// <param name="Assignment">The app server the task ran on.</param>
/// <param name="Result">The RESULT the app server returned.</param>
/// <param name="Elapsed">From the first submission to the result, retries included.</param>
/// <param name="Attempts">Submissions made (1 when the first path worked).</param>
public sealed record TaskRun(Assignment Assignment, TaskResult Result, TimeSpan Elapsed, int Attempts);
