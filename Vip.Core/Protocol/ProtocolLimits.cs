namespace Vip.Protocol;

/// <summary>Caps on what a peer may send (docs/protocol.md, "Field encodings").</summary>
public sealed class ProtocolLimits
{
    /// <summary>Default payload cap: 64 KiB.</summary>
    public const int DefaultMaxPayload = 64 * 1024;

    /// <summary>No configuration may raise the payload cap above 16 MiB.</summary>
    public const int MaxPayloadCeiling = 16 * 1024 * 1024;

    /// <summary>Maximum attributes in one <c>attrs</c> field.</summary>
    public const int MaxAttributes = 32;

    /// <summary>Maximum bytes of a <c>str16</c> field.</summary>
    public const int MaxStr16 = 4096;

    /// <summary>Maximum bytes of a <c>bytes16</c> field (tickets).</summary>
    public const int MaxBytes16 = 1024;

    /// <summary>Maximum ranked alternatives in a REDIRECT.</summary>
    public const int MaxAlternatives = 8;

    /// <summary>Maximum arguments of an ADMIN frame.</summary>
    public const int MaxAdminArgs = 32;

    /// <summary>Maximum bytes of a PING payload.</summary>
    public const int MaxPingPayload = 64;

    /// <summary>The shared default instance.</summary>
    public static ProtocolLimits Default { get; } = new();

    /// <summary>Largest accepted payload, in bytes. Default 65,536; at most <see cref="MaxPayloadCeiling"/>.</summary>
    public int MaxPayload { get; init; } = DefaultMaxPayload;

    /// <summary>Throws when the limits are out of range.</summary>
    public void Validate()
    {
        if (MaxPayload is < 256 or > MaxPayloadCeiling)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPayload), MaxPayload, $"must be between 256 and {MaxPayloadCeiling}");
        }
    }
}
