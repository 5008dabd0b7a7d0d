using System.Buffers;

namespace Vip.Protocol;

/// <summary>
/// A parsed frame: its header and its payload. The payload is a slice of the reader's buffer and is valid only
/// until the reader advances past it (<c>PipeReader.AdvanceTo</c>).
/// </summary>
public readonly struct Frame
{
    /// <summary>Creates a frame view.</summary>
    public Frame(FrameHeader header, ReadOnlySequence<byte> payload)
    {
        Header = header;
        Payload = payload;
    }

    /// <summary>The frame header.</summary>
    public FrameHeader Header { get; }

    /// <summary>The payload bytes (length = <see cref="FrameHeader.Length"/>).</summary>
    public ReadOnlySequence<byte> Payload { get; }

    /// <summary>The frame type.</summary>
    public FrameType Type => Header.Type;

    /// <summary>The request id.</summary>
    public ulong RequestId => Header.RequestId;

    /// <summary>
    /// The payload as one span: the payload itself when it lies in one segment, otherwise a copy into
    /// <paramref name="scratch"/>, which must be at least the payload's length (the configured cap is enough).
    /// </summary>
    public ReadOnlySpan<byte> PayloadSpan(Span<byte> scratch)
    {
        if (Payload.IsSingleSegment)
        {
            return Payload.FirstSpan;
        }

        var n = (int)Payload.Length;
        Payload.CopyTo(scratch);
        return scratch[..n];
    }
}
