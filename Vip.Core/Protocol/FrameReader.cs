using System.Buffers;

namespace Vip.Protocol;

/// <summary>
/// Cuts frames out of a byte stream, checking the header (magic, version, type, length cap) before it waits
/// for or slices the payload.
/// </summary>
/// <remarks>
/// Use it in the usual Pipelines loop: <c>consumed = buffer.Start; examined = buffer.End;</c> then call
/// <see cref="TryParse"/> until it returns false, handle each frame, and <c>reader.AdvanceTo(consumed, examined)</c>.
/// </remarks>
public sealed class FrameReader
{
    private readonly int _maxPayload;

    /// <summary>Creates a reader enforcing <paramref name="limits"/> (default: <see cref="ProtocolLimits.Default"/>).</summary>
    public FrameReader(ProtocolLimits? limits = null)
    {
        limits ??= ProtocolLimits.Default;
        limits.Validate();
        _maxPayload = limits.MaxPayload;
    }

    /// <summary>The payload cap this reader enforces.</summary>
    public int MaxPayload => _maxPayload;

    /// <summary>
    /// Tries to read one frame from <paramref name="input"/> starting at <paramref name="consumed"/>.
    /// Returns true and advances <paramref name="consumed"/> past the frame when a whole frame is there;
    /// returns false (setting <paramref name="examined"/> to the end) when more bytes are needed.
    /// Throws <see cref="VipProtocolException"/> on a bad header, at once, before the payload arrives.
    /// </summary>
    public bool TryParse(in ReadOnlySequence<byte> input, ref SequencePosition consumed, ref SequencePosition examined, out Frame frame)
    {
        var buffer = input.Slice(consumed);
        if (buffer.Length < FrameHeader.Size)
        {
            examined = input.End;
            frame = default;
            return false;
        }

        FrameHeader header;
        var first = buffer.FirstSpan;
        if (first.Length >= FrameHeader.Size)
        {
            header = FrameHeader.Read(first, _maxPayload);
        }
        else
        {
            Span<byte> tmp = stackalloc byte[FrameHeader.Size];
            buffer.Slice(0, FrameHeader.Size).CopyTo(tmp);
            header = FrameHeader.Read(tmp, _maxPayload);
        }

        var total = FrameHeader.Size + (long)header.Length;
        if (buffer.Length < total)
        {
            examined = input.End;
            frame = default;
            return false;
        }

        var payload = buffer.Slice(FrameHeader.Size, header.Length);
        frame = new Frame(header, payload);
        consumed = payload.End;
        examined = consumed;
        return true;
    }

    /// <summary>
    /// Reads the single frame a UDP datagram carries. Throws <see cref="VipProtocolException"/> when the datagram
    /// is not exactly one valid frame.
    /// </summary>
    public FrameHeader ParseDatagram(ReadOnlySpan<byte> datagram, out ReadOnlySpan<byte> payload)
    {
        var header = FrameHeader.Read(datagram, _maxPayload);
        if (datagram.Length != FrameHeader.Size + header.Length)
        {
            VipProtocolException.ThrowMalformed($"datagram holds {datagram.Length} bytes, the frame claims {FrameHeader.Size + header.Length}");
        }

        payload = datagram[FrameHeader.Size..];
        return header;
    }
}
