using System.Buffers.Binary;
using System.Text;

namespace Vip.Protocol;

/// <summary>
/// Writes payload fields (docs/protocol.md, "Field encodings") into a span sized in advance with
/// <see cref="WireSize"/>. A value that does not fit its encoding is the caller's bug: <see cref="ArgumentException"/>.
/// </summary>
public ref struct PayloadWriter
{
    private readonly Span<byte> _span;
    private int _pos;

    /// <summary>Writes from the start of <paramref name="destination"/>.</summary>
    public PayloadWriter(Span<byte> destination)
    {
        _span = destination;
        _pos = 0;
    }

    /// <summary>Bytes written so far.</summary>
    public readonly int Written => _pos;

    /// <summary>u8.</summary>
    public void WriteU8(byte value) => _span[_pos++] = value;

    /// <summary>u16.</summary>
    public void WriteU16(ushort value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(_span[_pos..], value);
        _pos += 2;
    }

    /// <summary>u32.</summary>
    public void WriteU32(uint value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(_span[_pos..], value);
        _pos += 4;
    }

    /// <summary>u64.</summary>
    public void WriteU64(ulong value)
    {
        BinaryPrimitives.WriteUInt64BigEndian(_span[_pos..], value);
        _pos += 8;
    }

    /// <summary>i64.</summary>
    public void WriteI64(long value)
    {
        BinaryPrimitives.WriteInt64BigEndian(_span[_pos..], value);
        _pos += 8;
    }

    /// <summary>Raw bytes, no length prefix.</summary>
    public void WriteRaw(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(_span[_pos..]);
        _pos += bytes.Length;
    }

    /// <summary>str8 from a string.</summary>
    public void WriteStr8(string value)
    {
        var n = Encoding.UTF8.GetBytes(value, _span[(_pos + 1)..]);
        if (n > byte.MaxValue)
        {
            throw new ArgumentException($"'{value}' is longer than 255 UTF-8 bytes", nameof(value));
        }

        _span[_pos] = (byte)n;
        _pos += 1 + n;
    }

    /// <summary>str8 from UTF-8 bytes.</summary>
    public void WriteStr8(ReadOnlySpan<byte> utf8)
    {
        if (utf8.Length > byte.MaxValue)
        {
            throw new ArgumentException("string is longer than 255 bytes", nameof(utf8));
        }

        WriteU8((byte)utf8.Length);
        WriteRaw(utf8);
    }

    /// <summary>str16 from a string.</summary>
    public void WriteStr16(string value)
    {
        var n = Encoding.UTF8.GetBytes(value, _span[(_pos + 2)..]);
        if (n > ProtocolLimits.MaxStr16)
        {
            throw new ArgumentException($"string is longer than {ProtocolLimits.MaxStr16} UTF-8 bytes", nameof(value));
        }

        BinaryPrimitives.WriteUInt16BigEndian(_span[_pos..], (ushort)n);
        _pos += 2 + n;
    }

    /// <summary>str16 from UTF-8 bytes.</summary>
    public void WriteStr16(ReadOnlySpan<byte> utf8)
    {
        if (utf8.Length > ProtocolLimits.MaxStr16)
        {
            throw new ArgumentException($"string is longer than {ProtocolLimits.MaxStr16} bytes", nameof(utf8));
        }

        WriteU16((ushort)utf8.Length);
        WriteRaw(utf8);
    }

    /// <summary>bytes16.</summary>
    public void WriteBytes16(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > ProtocolLimits.MaxBytes16)
        {
            throw new ArgumentException($"field is longer than {ProtocolLimits.MaxBytes16} bytes", nameof(bytes));
        }

        WriteU16((ushort)bytes.Length);
        WriteRaw(bytes);
    }

    /// <summary>bytes32.</summary>
    public void WriteBytes32(ReadOnlySpan<byte> bytes)
    {
        WriteU32((uint)bytes.Length);
        WriteRaw(bytes);
    }

    /// <summary>endpoint.</summary>
    public void WriteEndpoint(in WireEndpoint endpoint)
    {
        if (endpoint.Family == 0)
        {
            throw new ArgumentException("endpoint has no address", nameof(endpoint));
        }

        WriteU8(endpoint.Family);
        _pos += endpoint.WriteAddress(_span[_pos..]);
        WriteU16(endpoint.Port);
    }

    /// <summary>attrs from key/value strings.</summary>
    public void WriteAttributes(IReadOnlyList<KeyValuePair<string, string>> attributes)
    {
        if (attributes.Count > ProtocolLimits.MaxAttributes)
        {
            throw new ArgumentException($"more than {ProtocolLimits.MaxAttributes} attributes", nameof(attributes));
        }

        WriteU8((byte)attributes.Count);
        for (var i = 0; i < attributes.Count; i++)
        {
            if (attributes[i].Key.Length == 0)
            {
                throw new ArgumentException("attribute key is empty", nameof(attributes));
            }

            WriteStr8(attributes[i].Key);
            WriteStr8(attributes[i].Value);
        }
    }

    /// <summary>attrs copied from a received list.</summary>
    public void WriteAttributes(AttributeList attributes)
    {
        WriteU8((byte)attributes.Count);
        WriteRaw(attributes.Raw);
    }
}

/// <summary>Encoded sizes of payload fields, for sizing a frame before writing it.</summary>
public static class WireSize
{
    /// <summary>Size of a str8 holding <paramref name="value"/>.</summary>
    public static int Str8(string value) => 1 + Encoding.UTF8.GetByteCount(value);

    /// <summary>Size of a str16 holding <paramref name="value"/>.</summary>
    public static int Str16(string value) => 2 + Encoding.UTF8.GetByteCount(value);

    /// <summary>Size of an attrs field.</summary>
    public static int Attributes(IReadOnlyList<KeyValuePair<string, string>> attributes)
    {
        var n = 1;
        for (var i = 0; i < attributes.Count; i++)
        {
            n += Str8(attributes[i].Key) + Str8(attributes[i].Value);
        }

        return n;
    }
}
