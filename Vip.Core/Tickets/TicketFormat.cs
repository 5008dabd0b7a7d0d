using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Vip.Tickets;

/// <summary>
/// The version-1 ticket layout (docs/protocol.md, "Tickets"). All integers big-endian.
/// <code>
/// TICKET := version:u8(=1) keyId:u32 ticketId:u64 expiresUnixMs:i64 nonce:16 bytes
///           family:u8(4|6) clientAddress:4|16 bytes serverId:str8(1..255) mac:32 bytes
/// mac    := HMAC-SHA256(secret of keyId, every byte before mac)
/// </code>
/// </summary>
internal static class TicketFormat
{
    public const byte Version = 1;
    public const int NonceLength = 16;
    public const int MacLength = 32;
    public const int MaxServerIdLength = 255;

    public const int KeyIdOffset = 1;
    public const int TicketIdOffset = 5;
    public const int ExpiresOffset = 13;
    public const int NonceOffset = 21;
    public const int FamilyOffset = 37;
    public const int AddressOffset = 38;

    /// <summary>Shortest ticket: IPv4 and a one-byte server id.</summary>
    public const int MinLength = AddressOffset + 4 + 1 + 1 + MacLength;

    /// <summary>Longest ticket: IPv6 and a 255-byte server id.</summary>
    public const int MaxLength = AddressOffset + 16 + 1 + MaxServerIdLength + MacLength;

    /// <summary>Length of a ticket for an address family and a server id of <paramref name="serverIdBytes"/> UTF-8 bytes.</summary>
    public static int Length(bool ipv6, int serverIdBytes) => AddressOffset + (ipv6 ? 16 : 4) + 1 + serverIdBytes + MacLength;

    /// <summary>
    /// Writes <paramref name="address"/> as 16 bytes, IPv4 as IPv4-mapped IPv6, so the two spellings of one IPv4
    /// client (a dual-stack socket reports ::ffff:a.b.c.d) compare equal. Returns false for other families.
    /// </summary>
    public static bool TryWriteCanonical(IPAddress address, Span<byte> destination16, out bool isIpv4)
    {
        isIpv4 = false;
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            destination16[..10].Clear();
            destination16[10] = 0xff;
            destination16[11] = 0xff;
            isIpv4 = address.TryWriteBytes(destination16[12..], out _);
            return isIpv4;
        }

        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            if (!address.TryWriteBytes(destination16, out _))
            {
                return false;
            }

            isIpv4 = IsIpv4Mapped(destination16);
            return true;
        }

        return false;
    }

    public static bool IsIpv4Mapped(ReadOnlySpan<byte> address16) =>
        address16[..10].IndexOfAnyExcept((byte)0) < 0 && address16[10] == 0xff && address16[11] == 0xff;

    /// <summary>The fields of a ticket whose layout is valid (the MAC not yet checked).</summary>
    public readonly ref struct Parsed
    {
        public required uint KeyId { get; init; }
        public required ulong TicketId { get; init; }
        public required long ExpiresUnixMs { get; init; }
        public required ReadOnlySpan<byte> Address { get; init; }   // 4 or 16 bytes, as written
        public required ReadOnlySpan<byte> ServerId { get; init; }  // UTF-8
        public required ReadOnlySpan<byte> Signed { get; init; }    // everything the MAC covers
        public required ReadOnlySpan<byte> Mac { get; init; }
    }

    /// <summary>Checks the layout: version, family, lengths adding up exactly. Allocates nothing.</summary>
    public static bool TryParse(ReadOnlySpan<byte> ticket, out Parsed parsed)
    {
        parsed = default;
        if (ticket.Length is < MinLength or > MaxLength || ticket[0] != Version)
        {
            return false;
        }

        int addressLength = ticket[FamilyOffset] switch { 4 => 4, 6 => 16, _ => 0 };
        if (addressLength == 0)
        {
            return false;
        }

        var idLengthOffset = AddressOffset + addressLength;
        int idLength = ticket[idLengthOffset];
        if (idLength == 0 || idLengthOffset + 1 + idLength + MacLength != ticket.Length)
        {
            return false;
        }

        var signedLength = idLengthOffset + 1 + idLength;
        parsed = new Parsed
        {
            KeyId = BinaryPrimitives.ReadUInt32BigEndian(ticket[KeyIdOffset..]),
            TicketId = BinaryPrimitives.ReadUInt64BigEndian(ticket[TicketIdOffset..]),
            ExpiresUnixMs = BinaryPrimitives.ReadInt64BigEndian(ticket[ExpiresOffset..]),
            Address = ticket.Slice(AddressOffset, addressLength),
            ServerId = ticket.Slice(idLengthOffset + 1, idLength),
            Signed = ticket[..signedLength],
            Mac = ticket.Slice(signedLength, MacLength),
        };
        return true;
    }
}
