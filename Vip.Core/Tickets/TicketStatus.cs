namespace Vip.Tickets;

/// <summary>
/// The outcome of verifying a ticket. Every value but <see cref="Valid"/> is a denial; the numeric values are the
/// CLAIM-DENIED reason codes of <c>docs/protocol.md</c>, so <c>(ushort)status</c> goes on the wire as is.
/// </summary>
public enum TicketStatus : ushort
{
    /// <summary>The ticket is genuine, current, for this server and this client, and was not used before.</summary>
    Valid = 0,

    /// <summary>The MAC does not match: the ticket was forged or altered, or signed with another secret.</summary>
    BadSignature = 1,

    /// <summary>The ticket's expiry (plus the allowed clock skew) has passed.</summary>
    Expired = 2,

    /// <summary>The ticket was already presented once.</summary>
    Replayed = 3,

    /// <summary>The ticket was issued to another client address.</summary>
    WrongClient = 4,

    /// <summary>The ticket was issued for another app server.</summary>
    WrongServer = 5,

    /// <summary>The ticket names a key id that is not in this server's key ring.</summary>
    UnknownKey = 6,

    /// <summary>The bytes are not a version-1 ticket (wrong length, version, family or field lengths), or its expiry is absurd.</summary>
    Malformed = 7,

    /// <summary>Strict mode only: no EXPECT notice for this ticket id and client has been received.</summary>
    NotExpected = 8,
}
