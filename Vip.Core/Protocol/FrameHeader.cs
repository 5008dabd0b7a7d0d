using System.Buffers.Binary;

namespace Vip.Protocol;

/// <summary>The fixed 18-byte header in front of every frame (docs/protocol.md, "Frame header").</summary>
public readonly record struct FrameHeader(FrameType Type, ushort Flags, int Length, ulong RequestId)
{
    /// <summary>Header size in bytes.</summary>
    public const int Size = 18;

    /// <summary>"VP", big-endian.</summary>
    public const ushort Magic = 0x5650;

    /// <summary>The protocol version this build speaks.</summary>
    public const byte CurrentVersion = 1;

    // header := magic:u16 version:u8 type:u8 flags:u16 length:u32 requestId:u64

    /// <summary>Writes the header into the first <see cref="Size"/> bytes of <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        if (destination.Length < Size)
        {
            throw new ArgumentException("destination is shorter than a frame header", nameof(destination));
        }

        BinaryPrimitives.WriteUInt16BigEndian(destination, Magic);
        destination[2] = CurrentVersion;
        destination[3] = (byte)Type;
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], Flags);
        BinaryPrimitives.WriteUInt32BigEndian(destination[6..], (uint)Length);
        BinaryPrimitives.WriteUInt64BigEndian(destination[10..], RequestId);
    }

    /// <summary>
    /// Reads and validates a header from exactly <see cref="Size"/> bytes: magic, version, type, then the length
    /// against <paramref name="maxPayload"/>, in that order. Throws <see cref="VipProtocolException"/>.
    /// </summary>
    public static FrameHeader Read(ReadOnlySpan<byte> source, int maxPayload)
    {
        if (source.Length < Size)
        {
            VipProtocolException.ThrowTruncated();
        }

        if (BinaryPrimitives.ReadUInt16BigEndian(source) != Magic)
        {
            VipProtocolException.Throw(ProtocolError.BadMagic, "not a Vip frame (bad magic)");
        }

        if (source[2] != CurrentVersion)
        {
            VipProtocolException.Throw(ProtocolError.UnsupportedVersion, $"unsupported protocol version {source[2]}");
        }

        var type = source[3];
        if (!IsKnownType(type))
        {
            VipProtocolException.Throw(ProtocolError.UnknownType, $"unknown frame type 0x{type:x2}");
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(source[6..]);
        if (length > (uint)maxPayload)
        {
            VipProtocolException.Throw(ProtocolError.TooLarge, $"payload length {length} exceeds the cap of {maxPayload} bytes");
        }

        return new FrameHeader((FrameType)type, BinaryPrimitives.ReadUInt16BigEndian(source[4..]), (int)length,
            BinaryPrimitives.ReadUInt64BigEndian(source[10..]));
    }

    /// <summary>True when <paramref name="type"/> is a frame type of this protocol version.</summary>
    public static bool IsKnownType(byte type) => type switch
    {
        >= 0x01 and <= 0x05 => true,
        >= 0x10 and <= 0x14 => true,
        >= 0x20 and <= 0x22 => true,
        0x30 or 0x31 or 0x40 or 0x41 => true,
        _ => false,
    };
}
