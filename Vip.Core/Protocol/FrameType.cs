namespace Vip.Protocol;

/// <summary>The type byte of a Vip frame (docs/protocol.md, "Frame types").</summary>
public enum FrameType : byte
{
    /// <summary>A task submitted by a client.</summary>
    Task = 0x01,
    /// <summary>A task relayed by a tier-1 daemon with the client's real address.</summary>
    Forward = 0x02,
    /// <summary>The assignment: app server address and ticket.</summary>
    Redirect = 0x03,
    /// <summary>A refusal with a code, retry-after and message.</summary>
    Reject = 0x04,
    /// <summary>The outcome of a task run on an app server (sample app).</summary>
    Result = 0x05,
    /// <summary>An app server announces itself to a tier-2 daemon.</summary>
    Register = 0x10,
    /// <summary>A tier-2 daemon accepts a REGISTER or DEREGISTER.</summary>
    RegisterOk = 0x11,
    /// <summary>An app server reports its load and state.</summary>
    Heartbeat = 0x12,
    /// <summary>An app server leaves.</summary>
    Deregister = 0x13,
    /// <summary>A tier-2 daemon tells an app server which client to expect.</summary>
    Expect = 0x14,
    /// <summary>A client presents its ticket to an app server.</summary>
    Claim = 0x20,
    /// <summary>The app server accepted the ticket.</summary>
    ClaimOk = 0x21,
    /// <summary>The app server refused the ticket.</summary>
    ClaimDenied = 0x22,
    /// <summary>Liveness probe.</summary>
    Ping = 0x30,
    /// <summary>Answer to <see cref="Ping"/>.</summary>
    Pong = 0x31,
    /// <summary>A control-plane command.</summary>
    Admin = 0x40,
    /// <summary>Answer to <see cref="Admin"/>.</summary>
    AdminResult = 0x41,
}

/// <summary>Why a request was refused (the REJECT frame's code; docs/protocol.md, "REJECT").</summary>
public enum RejectCode : ushort
{
    /// <summary>No up server matches the requirement and the client's bindings.</summary>
    NoMatchingServer = 1,
    /// <summary>Matching servers exist but all are at capacity.</summary>
    Overloaded = 2,
    /// <summary>The client id is unknown and unknown clients are refused.</summary>
    UnknownClient = 3,
    /// <summary>The frame or the requirement expression is invalid.</summary>
    Malformed = 4,
    /// <summary>The payload is larger than the configured cap.</summary>
    TooLarge = 5,
    /// <summary>No next hop answered; another path may.</summary>
    Unavailable = 6,
    /// <summary>Missing or wrong admin token.</summary>
    Unauthorized = 7,
    /// <summary>The per-connection in-flight limit was reached.</summary>
    TooManyInFlight = 8,
    /// <summary>The next hop did not answer within its deadline.</summary>
    Timeout = 9,
    /// <summary>An unexpected failure at the answerer.</summary>
    Internal = 10,
}

/// <summary>Why an app server refused a ticket (the CLAIM-DENIED frame's reason).</summary>
public enum ClaimDenyReason : ushort
{
    /// <summary>The signature does not verify.</summary>
    BadSignature = 1,
    /// <summary>The ticket's expiry has passed.</summary>
    Expired = 2,
    /// <summary>The ticket was already used.</summary>
    Replayed = 3,
    /// <summary>The connecting address is not the one the ticket was issued to.</summary>
    WrongClient = 4,
    /// <summary>The ticket was issued for another app server.</summary>
    WrongServer = 5,
    /// <summary>The ticket's key id is not known to this server.</summary>
    UnknownKey = 6,
    /// <summary>The ticket bytes are not a ticket.</summary>
    Malformed = 7,
    /// <summary>Strict mode: no EXPECT notice was seen for this ticket.</summary>
    NotExpected = 8,
}
