using System.Buffers;
using System.Buffers.Binary;

namespace Vip.Protocol;

/// <summary>
/// Reads a PROXY protocol v2 header (docs/protocol.md, "PROXY protocol v2") from the start of a stream or a datagram,
/// without allocating. The fixed 16 bytes are checked as they arrive (signature, version, command, family, then the
/// length field against <see cref="MaxLength"/>), so a hostile peer cannot make the reader buffer more than
/// 16 + <see cref="MaxLength"/> bytes. Errors throw <see cref="VipProtocolException"/> with
/// <see cref="ProtocolError.BadProxyHeader"/>, or <see cref="ProtocolError.TooLarge"/> for the length.
/// </summary>
/// <remarks>
/// Grammar (proxy-protocol.txt 2.2):
/// <c>header := signature:12 verCmd:u8 famProto:u8 len:u16 addresses:(len bytes, TLVs skipped)</c>;
/// IPv4 block <c>src:4 dst:4 srcPort:u16 dstPort:u16</c>, IPv6 block <c>src:16 dst:16 srcPort:u16 dstPort:u16</c>.
/// LOCAL headers may carry any valid family; their address block is skipped.
/// </remarks>
public sealed class ProxyProtocolReader
{
    /// <summary>Creates a reader that rejects headers whose length field exceeds <paramref name="maxLength"/>.</summary>
    /// <param name="maxLength">Cap on the length field (address block + TLVs), 36 to 65 535; default 512.</param>
    public ProxyProtocolReader(int maxLength = ProxyProtocol.DefaultMaxLength)
    {
        if (maxLength is < ProxyProtocol.IPv6AddressBlockLength or > ushort.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, $"must be between {ProxyProtocol.IPv6AddressBlockLength} and {ushort.MaxValue}");
        }

        MaxLength = maxLength;
    }

    /// <summary>The shared reader with the default cap.</summary>
    public static ProxyProtocolReader Default { get; } = new();

    /// <summary>The cap on the length field this reader enforces.</summary>
    public int MaxLength { get; }

    /// <summary>
    /// Tries to read the header at <paramref name="consumed"/>. Returns true and moves <paramref name="consumed"/> past
    /// the header (TLVs included) when it is all there; returns false with <paramref name="examined"/> at the end when
    /// more bytes are needed. Throws <see cref="VipProtocolException"/> as soon as the bytes seen cannot be a valid
    /// header.
    /// </summary>
    public bool TryParse(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out ProxyHeader header)
    {
        var buffer = input.Slice(consumed);
        var first = buffer.FirstSpan;
        if (first.Length >= ProxyProtocol.FixedHeaderLength)
        {
            // Fast path: the fixed part, and usually the whole header, is in the first segment.
            var length = CheckFixed(first);
            var total = ProxyProtocol.FixedHeaderLength + length;
            if (first.Length >= total)
            {
                header = ParseBlock(first[..ProxyProtocol.FixedHeaderLength], first.Slice(ProxyProtocol.FixedHeaderLength, length));
                consumed = buffer.GetPosition(total);
                examined = consumed;
                return true;
            }
        }

        Span<byte> fixedPart = stackalloc byte[ProxyProtocol.FixedHeaderLength];
        var have = (int)Math.Min(buffer.Length, ProxyProtocol.FixedHeaderLength);
        buffer.Slice(0, have).CopyTo(fixedPart);
        var blockLength = CheckFixed(fixedPart[..have]);
        if (blockLength < 0 || buffer.Length < ProxyProtocol.FixedHeaderLength + blockLength)
        {
            examined = input.End;
            header = default;
            return false;
        }

        // Only the address block is copied (at most 36 bytes); TLVs after it are skipped unread.
        var block = buffer.Slice(ProxyProtocol.FixedHeaderLength, blockLength);
        Span<byte> addresses = stackalloc byte[ProxyProtocol.IPv6AddressBlockLength];
        var copy = (int)Math.Min(block.Length, ProxyProtocol.IPv6AddressBlockLength);
        block.Slice(0, copy).CopyTo(addresses);
        header = ParseBlock(fixedPart, addresses[..copy]);
        consumed = block.End;
        examined = consumed;
        return true;
    }

    /// <summary>
    /// Reads the header at the start of a UDP datagram and returns it; <paramref name="headerLength"/> is where the
    /// payload starts. Throws <see cref="VipProtocolException"/> when the datagram does not start with a whole valid header.
    /// </summary>
    public ProxyHeader ParseDatagram(ReadOnlySpan<byte> datagram, out int headerLength)
    {
        var length = CheckFixed(datagram[..Math.Min(datagram.Length, ProxyProtocol.FixedHeaderLength)]);
        if (length < 0 || datagram.Length < ProxyProtocol.FixedHeaderLength + length)
        {
            VipProtocolException.Throw(ProtocolError.BadProxyHeader, "the datagram ends inside its PROXY header");
        }

        headerLength = ProxyProtocol.FixedHeaderLength + length;
        return ParseBlock(datagram[..ProxyProtocol.FixedHeaderLength], datagram.Slice(ProxyProtocol.FixedHeaderLength, length));
    }

    // Checks whatever part of the 16 fixed bytes is present. Returns the length field, or -1 when fewer than 16 bytes.
    private int CheckFixed(ReadOnlySpan<byte> prefix)
    {
        var signature = ProxyProtocol.Signature;
        var n = Math.Min(prefix.Length, signature.Length);
        if (!prefix[..n].SequenceEqual(signature[..n]))
        {
            VipProtocolException.Throw(ProtocolError.BadProxyHeader, "not a PROXY protocol v2 header (bad signature)");
        }

        if (prefix.Length <= 12)
        {
            return -1;
        }

        var verCmd = prefix[12];
        if ((verCmd & 0xF0) != ProxyProtocol.Version2)
        {
            VipProtocolException.Throw(ProtocolError.BadProxyHeader, $"unsupported PROXY protocol version {verCmd >> 4}");
        }

        var command = verCmd & 0x0F;
        if (command > (int)ProxyCommand.Proxy)
        {
            VipProtocolException.Throw(ProtocolError.BadProxyHeader, $"unknown PROXY command 0x{command:x}");
        }

        if (prefix.Length <= 13)
        {
            return -1;
        }

        var famProto = prefix[13];
        var family = famProto & 0xF0;
        var transport = famProto & 0x0F;
        // Valid values: family UNSPEC/INET/INET6/UNIX (0-3), transport UNSPEC/STREAM/DGRAM (0-2).
        if (family > 0x30 || transport > 2)
        {
            VipProtocolException.Throw(ProtocolError.BadProxyHeader, $"invalid PROXY address family 0x{famProto:x2}");
        }

        if (command == (int)ProxyCommand.Proxy && (family is not (ProxyProtocol.FamilyInet or ProxyProtocol.FamilyInet6) || transport == 0))
        {
            VipProtocolException.Throw(ProtocolError.BadProxyHeader, $"PROXY command with unsupported address family 0x{famProto:x2}");
        }

        if (prefix.Length < ProxyProtocol.FixedHeaderLength)
        {
            return -1;
        }

        int length = BinaryPrimitives.ReadUInt16BigEndian(prefix[14..]);
        if (length > MaxLength)
        {
            VipProtocolException.Throw(ProtocolError.TooLarge, $"PROXY header length {length} exceeds the cap of {MaxLength} bytes");
        }

        if (command == (int)ProxyCommand.Proxy)
        {
            var need = family == ProxyProtocol.FamilyInet ? ProxyProtocol.IPv4AddressBlockLength : ProxyProtocol.IPv6AddressBlockLength;
            if (length < need)
            {
                VipProtocolException.Throw(ProtocolError.BadProxyHeader, $"PROXY header length {length} is shorter than its address block ({need})");
            }
        }

        return length;
    }

    // fixedPart: the 16 checked bytes; block: at least the address block (more is TLVs, ignored).
    private static ProxyHeader ParseBlock(ReadOnlySpan<byte> fixedPart, ReadOnlySpan<byte> block)
    {
        if ((fixedPart[12] & 0x0F) == (int)ProxyCommand.Local)
        {
            return ProxyHeader.Local;
        }

        var famProto = fixedPart[13];
        var transport = (ProxyTransport)(famProto & 0x0F);
        WireEndpoint source, destination;
        if ((famProto & 0xF0) == ProxyProtocol.FamilyInet)
        {
            // src:4 dst:4 srcPort:u16 dstPort:u16
            source = WireEndpoint.FromBytes(block[..4], BinaryPrimitives.ReadUInt16BigEndian(block[8..]));
            destination = WireEndpoint.FromBytes(block.Slice(4, 4), BinaryPrimitives.ReadUInt16BigEndian(block[10..]));
        }
        else
        {
            // src:16 dst:16 srcPort:u16 dstPort:u16
            source = WireEndpoint.FromBytes(block[..16], BinaryPrimitives.ReadUInt16BigEndian(block[32..]));
            destination = WireEndpoint.FromBytes(block.Slice(16, 16), BinaryPrimitives.ReadUInt16BigEndian(block[34..]));
        }

        return ProxyHeader.FromParsed(ProxyCommand.Proxy, transport, source, destination);
    }
}
