using System.Diagnostics.CodeAnalysis;

namespace Vip.Protocol;

/// <summary>What was wrong with bytes received from the network (docs/protocol.md, "Frame header").</summary>
public enum ProtocolError
{
    /// <summary>The first two bytes are not "VP".</summary>
    BadMagic = 1,
    /// <summary>The version byte is not one this build speaks.</summary>
    UnsupportedVersion = 2,
    /// <summary>The type byte is not in the frame table.</summary>
    UnknownType = 3,
    /// <summary>A length is larger than its cap.</summary>
    TooLarge = 4,
    /// <summary>The payload does not follow the grammar of its frame type.</summary>
    Malformed = 5,
    /// <summary>A string is not valid UTF-8.</summary>
    InvalidUtf8 = 6,
    /// <summary>A PROXY protocol header is invalid.</summary>
    BadProxyHeader = 7,
}

/// <summary>Base class of the exceptions Vip raises for its own failures.</summary>
public abstract class VipException : Exception
{
    /// <summary>Creates the exception with a message.</summary>
    protected VipException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>Bytes from the network broke the protocol. The connection that sent them should be closed.</summary>
public sealed class VipProtocolException : VipException
{
    /// <summary>Creates the exception.</summary>
    public VipProtocolException(ProtocolError error, string message) : base(message) => Error = error;

    /// <summary>What was wrong.</summary>
    public ProtocolError Error { get; }

    /// <summary>The REJECT code that answers this error when the link can still answer.</summary>
    public RejectCode RejectCode => Error == ProtocolError.TooLarge ? RejectCode.TooLarge : RejectCode.Malformed;

    /// <summary>Throws a <see cref="VipProtocolException"/>; kept out of line so hot paths stay small.</summary>
    [DoesNotReturn]
    public static void Throw(ProtocolError error, string message) => throw new VipProtocolException(error, message);

    [DoesNotReturn]
    internal static void ThrowMalformed(string message) => throw new VipProtocolException(ProtocolError.Malformed, message);

    [DoesNotReturn]
    internal static void ThrowTruncated() => throw new VipProtocolException(ProtocolError.Malformed, "payload ends inside a field");
}
