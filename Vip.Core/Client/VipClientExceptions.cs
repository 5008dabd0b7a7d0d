using Vip.Protocol;

namespace Vip.Client;

/// <summary>The system answered REJECT (after the retries the client's policy allows).</summary>
public sealed class VipRejectedException : VipException
{
    /// <summary>Creates the exception from the REJECT.</summary>
    public VipRejectedException(Reject reject)
        : base($"{(reject ?? throw new ArgumentNullException(nameof(reject))).Code}: {reject.Message}")
    {
        Reject = reject;
    }

    /// <summary>The REJECT as received.</summary>
    public Reject Reject { get; }

    /// <summary>Why the task was refused.</summary>
    public RejectCode Code => Reject.Code;

    /// <summary>How long the answerer asked to wait before trying again (zero: don't).</summary>
    public TimeSpan RetryAfter => TimeSpan.FromMilliseconds(Reject.RetryAfterMs);
}

/// <summary>The app server refused the ticket (CLAIM-DENIED).</summary>
public sealed class VipClaimDeniedException : VipException
{
    /// <summary>Creates the exception.</summary>
    public VipClaimDeniedException(ClaimDenyReason reason, string message) : base($"claim denied ({reason}): {message}") => Reason = reason;

    /// <summary>Why the ticket was refused.</summary>
    public ClaimDenyReason Reason { get; }
}

/// <summary>No answer could be had: connecting, sending or waiting failed on every attempt.</summary>
public sealed class VipUnreachableException : VipException
{
    /// <summary>Creates the exception with the last failure as inner exception.</summary>
    public VipUnreachableException(string message, Exception? inner = null) : base(message, inner) { }
}
