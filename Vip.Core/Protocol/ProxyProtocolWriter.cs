using System.Buffers;
using System.Buffers.Binary;

namespace Vip.Protocol;

/// <summary>
/// Writes PROXY protocol v2 headers (docs/protocol.md, "PROXY protocol v2") without allocating: LOCAL as 16 bytes,
/// PROXY over IPv4 as 28 bytes, over IPv6 (or mixed families, IPv4 written as <c>::ffff:a.b.c.d</c>) as 52 bytes.
/// No TLVs are written.
/// </summary>
public static class ProxyProtocolWriter
{
    // header := signature:12 verCmd:u8 famProto:u8 len:u16 addresses

    /// <summary>Writes <paramref name="header"/> at the start of <paramref name="destination"/>; returns the bytes written.</summary>
    public static int Write(Span<byte> destination, in ProxyHeader header)
    {
        var total = header.EncodedLength;
        if (destination.Length < total)
        {
            throw new ArgumentException($"destination holds {destination.Length} bytes, the header needs {total}", nameof(destination));
        }

        ProxyProtocol.Signature.CopyTo(destination);
        if (header.IsLocal)
        {
            destination[12] = ProxyProtocol.Version2 | (byte)ProxyCommand.Local;
            destination[13] = ProxyProtocol.FamilyUnspec;
            BinaryPrimitives.WriteUInt16BigEndian(destination[14..], 0);
            return total;
        }

        destination[12] = ProxyProtocol.Version2 | (byte)ProxyCommand.Proxy;
        var block = destination[ProxyProtocol.FixedHeaderLength..total];
        if (header.UsesIPv6)
        {
            // src:16 dst:16 srcPort:u16 dstPort:u16
            destination[13] = (byte)(ProxyProtocol.FamilyInet6 | (byte)header.Transport);
            BinaryPrimitives.WriteUInt16BigEndian(destination[14..], ProxyProtocol.IPv6AddressBlockLength);
            WriteIPv6(block[..16], header.Source);
            WriteIPv6(block.Slice(16, 16), header.Destination);
            BinaryPrimitives.WriteUInt16BigEndian(block[32..], header.Source.Port);
            BinaryPrimitives.WriteUInt16BigEndian(block[34..], header.Destination.Port);
        }
        else
        {
            // src:4 dst:4 srcPort:u16 dstPort:u16
            destination[13] = (byte)(ProxyProtocol.FamilyInet | (byte)header.Transport);
            BinaryPrimitives.WriteUInt16BigEndian(destination[14..], ProxyProtocol.IPv4AddressBlockLength);
            header.Source.WriteAddress(block[..4]);
            header.Destination.WriteAddress(block.Slice(4, 4));
            BinaryPrimitives.WriteUInt16BigEndian(block[8..], header.Source.Port);
            BinaryPrimitives.WriteUInt16BigEndian(block[10..], header.Destination.Port);
        }

        return total;
    }

    /// <summary>Writes <paramref name="header"/> into <paramref name="output"/> in one contiguous span.</summary>
    public static void Write(IBufferWriter<byte> output, in ProxyHeader header)
    {
        ArgumentNullException.ThrowIfNull(output);
        var span = output.GetSpan(header.EncodedLength);
        output.Advance(Write(span, header));
    }

    private static void WriteIPv6(Span<byte> destination, in WireEndpoint endpoint)
    {
        if (endpoint.Family == 6)
        {
            endpoint.WriteAddress(destination);
            return;
        }

        // IPv4-mapped IPv6: 80 zero bits, 16 one bits, then the IPv4 address.
        destination[..10].Clear();
        destination[10] = 0xFF;
        destination[11] = 0xFF;
        endpoint.WriteAddress(destination[12..]);
    }
}
