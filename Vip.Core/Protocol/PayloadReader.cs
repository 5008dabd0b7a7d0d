using System.Buffers.Binary;
using System.Text.Unicode;

namespace Vip.Protocol;

/// <summary>
/// Reads the fields of a payload (docs/protocol.md, "Field encodings") from one span, checking every length and
/// count against its cap and against what is left before slicing. Throws <see cref="VipProtocolException"/>.
/// </summary>
public ref struct PayloadReader
{
    private readonly ReadOnlySpan<byte> _span;
    private int _pos;

    /// <summary>Starts reading at the beginning of <paramref name="payload"/>.</summary>
    public PayloadReader(ReadOnlySpan<byte> payload)
    {
        _span = payload;
        _pos = 0;
    }

    /// <summary>Bytes not read yet.</summary>
    public readonly int Remaining => _span.Length - _pos;

    /// <summary>The bytes not read yet.</summary>
    public readonly ReadOnlySpan<byte> Rest => _span[_pos..];

    private ReadOnlySpan<byte> Take(int n)
    {
        if ((uint)n > (uint)Remaining)
        {
            VipProtocolException.ThrowTruncated();
        }

        var s = _span.Slice(_pos, n);
        _pos += n;
        return s;
    }

    /// <summary>u8.</summary>
    public byte ReadU8() => Take(1)[0];

    /// <summary>u16.</summary>
    public ushort ReadU16() => BinaryPrimitives.ReadUInt16BigEndian(Take(2));

    /// <summary>u32.</summary>
    public uint ReadU32() => BinaryPrimitives.ReadUInt32BigEndian(Take(4));

    /// <summary>u64.</summary>
    public ulong ReadU64() => BinaryPrimitives.ReadUInt64BigEndian(Take(8));

    /// <summary>i64.</summary>
    public long ReadI64() => BinaryPrimitives.ReadInt64BigEndian(Take(8));

    /// <summary>str8: UTF-8 bytes, validated.</summary>
    public ReadOnlySpan<byte> ReadStr8()
    {
        var s = Take(ReadU8());
        ValidateUtf8(s);
        return s;
    }

    /// <summary>str8 that must not be empty.</summary>
    public ReadOnlySpan<byte> ReadNonEmptyStr8(string field)
    {
        var s = ReadStr8();
        if (s.IsEmpty)
        {
            VipProtocolException.ThrowMalformed($"{field} is empty");
        }

        return s;
    }

    /// <summary>str16 capped at <paramref name="max"/> bytes: UTF-8 bytes, validated.</summary>
    public ReadOnlySpan<byte> ReadStr16(int max = ProtocolLimits.MaxStr16)
    {
        var n = ReadU16();
        if (n > max)
        {
            VipProtocolException.Throw(ProtocolError.TooLarge, $"string of {n} bytes exceeds the cap of {max}");
        }

        var s = Take(n);
        ValidateUtf8(s);
        return s;
    }

    /// <summary>bytes16 capped at <paramref name="max"/>.</summary>
    public ReadOnlySpan<byte> ReadBytes16(int max = ProtocolLimits.MaxBytes16)
    {
        var n = ReadU16();
        if (n > max)
        {
            VipProtocolException.Throw(ProtocolError.TooLarge, $"field of {n} bytes exceeds the cap of {max}");
        }

        return Take(n);
    }

    /// <summary>bytes32: bounded by what is left of the payload.</summary>
    public ReadOnlySpan<byte> ReadBytes32()
    {
        var n = ReadU32();
        if (n > (uint)Remaining)
        {
            VipProtocolException.Throw(ProtocolError.Malformed, $"field claims {n} bytes, {Remaining} remain");
        }

        return Take((int)n);
    }

    /// <summary>endpoint: family, 4 or 16 address bytes, port.</summary>
    public WireEndpoint ReadEndpoint()
    {
        var family = ReadU8();
        var len = family switch
        {
            4 => 4,
            6 => 16,
            _ => -1,
        };
        if (len < 0)
        {
            VipProtocolException.ThrowMalformed($"unknown address family {family}");
        }

        var address = Take(len);
        return WireEndpoint.FromBytes(address, ReadU16());
    }

    /// <summary>attrs: count ≤ 32, then key/value pairs; keys non-empty and unique.</summary>
    public AttributeList ReadAttributes()
    {
        var count = ReadU8();
        if (count > ProtocolLimits.MaxAttributes)
        {
            VipProtocolException.Throw(ProtocolError.TooLarge, $"{count} attributes exceed the cap of {ProtocolLimits.MaxAttributes}");
        }

        var start = _pos;
        for (var i = 0; i < count; i++)
        {
            var key = ReadStr8();
            if (key.IsEmpty)
            {
                VipProtocolException.ThrowMalformed("attribute key is empty");
            }

            ReadStr8();
        }

        var list = new AttributeList(_span[start.._pos], count);
        list.EnsureUniqueKeys();
        return list;
    }

    /// <summary>Throws unless every byte was read.</summary>
    public readonly void EnsureEnd()
    {
        if (Remaining != 0)
        {
            VipProtocolException.ThrowMalformed($"{Remaining} bytes left after the last field");
        }
    }

    private static void ValidateUtf8(ReadOnlySpan<byte> s)
    {
        if (!Utf8.IsValid(s))
        {
            VipProtocolException.Throw(ProtocolError.InvalidUtf8, "string is not valid UTF-8");
        }
    }
}
