using System.Buffers.Binary;
using Vip.Protocol;

namespace Vip.Dispatch.Tier1;

/// <summary>
/// Reads the PROXY protocol v2 header a trusted VIP box puts in front of a connection or datagram
/// (docs/protocol.md, "PROXY protocol v2"): signature, version 2, LOCAL or PROXY, TCP/UDP over IPv4 or IPv6.
/// </summary>
internal static class ProxyHeader
{
    /// <summary>Fixed part: 12-byte signature, version/command, family, length.</summary>
    public const int FixedSize = 16;

    private static ReadOnlySpan<byte> Signature => [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    /// <summary>
    /// Checks the fixed 16 bytes and returns the full header length (16 + address block and TLVs).
    /// Throws <see cref="VipProtocolException"/> (BadProxyHeader) when it is not a v2 header or is longer than <paramref name="maxLength"/>.
    /// </summary>
    public static int ReadLength(ReadOnlySpan<byte> fixedPart, int maxLength)
    {
        if (fixedPart.Length < FixedSize || !fixedPart[..12].SequenceEqual(Signature))
        {
            VipProtocolException.Throw(ProtocolError.BadProxyHeader, "expected a PROXY protocol v2 header from a trusted source");
        }

        var versionCommand = fixedPart[12];
        if (versionCommand >> 4 != 2 || (versionCommand & 0x0F) > 1)
        {
            VipProtocolException.Throw(ProtocolError.BadProxyHeader, $"unsupported PROXY version/command 0x{versionCommand:x2}");
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(fixedPart[14..]);
        if (length > maxLength - FixedSize)
        {
            VipProtocolException.Throw(ProtocolError.BadProxyHeader, $"PROXY header of {length + FixedSize} bytes exceeds the cap of {maxLength}");
        }

        return FixedSize + length;
    }

    /// <summary>
    /// Parses a whole header. Returns the source address for PROXY over TCP/UDP, or <c>default</c> (no address)
    /// for LOCAL (a health check by the proxy itself) and UNSPEC.
    /// </summary>
    public static WireEndpoint Parse(ReadOnlySpan<byte> header)
    {
        var local = (header[12] & 0x0F) == 0;
        var family = header[13];
        var block = header[FixedSize..];
        if (local)
        {
            return default;
        }

        switch (family)
        {
            case 0x11 or 0x12:
                if (block.Length < 12)
                {
                    VipProtocolException.Throw(ProtocolError.BadProxyHeader, "PROXY header too short for IPv4 addresses");
                }

                return WireEndpoint.FromBytes(block[..4], BinaryPrimitives.ReadUInt16BigEndian(block[8..]));
            case 0x21 or 0x22:
                if (block.Length < 36)
                {
                    VipProtocolException.Throw(ProtocolError.BadProxyHeader, "PROXY header too short for IPv6 addresses");
                }

                return WireEndpoint.FromBytes(block[..16], BinaryPrimitives.ReadUInt16BigEndian(block[32..]));
            case 0x00:
                return default;
            default:
                VipProtocolException.Throw(ProtocolError.BadProxyHeader, $"unsupported PROXY address family 0x{family:x2}");
                return default;
        }
    }
}
