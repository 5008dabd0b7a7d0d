using System.Buffers;
using System.Diagnostics;

namespace Vip.Protocol;

/// <summary>A frame payload that knows its type, its encoded size and how to write and read itself.</summary>
public interface IFrameMessage<TSelf> where TSelf : IFrameMessage<TSelf>
{
    /// <summary>The frame type that carries this message.</summary>
    static abstract FrameType FrameType { get; }

    /// <summary>Encoded payload size in bytes.</summary>
    int PayloadSize { get; }

    /// <summary>Writes the payload; exactly <see cref="PayloadSize"/> bytes.</summary>
    void WritePayload(ref PayloadWriter writer);

    /// <summary>Reads the payload, validating every field; throws <see cref="VipProtocolException"/>.</summary>
    static abstract TSelf Read(ReadOnlySpan<byte> payload);
}

/// <summary>Writes whole frames (header + payload) into an <see cref="IBufferWriter{T}"/> in one contiguous span.</summary>
public static class FrameWriter
{
    /// <summary>Writes <paramref name="message"/> as one frame with <paramref name="requestId"/>.</summary>
    public static void Write<T>(IBufferWriter<byte> output, ulong requestId, T message) where T : IFrameMessage<T>
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(message);
        var size = message.PayloadSize;
        var w = Begin(output, T.FrameType, requestId, size, out var span);
        message.WritePayload(ref w);
        End(output, w, size, span);
    }

    /// <summary>Writes a frame with an empty payload (PING without data, for instance).</summary>
    public static void WriteEmpty(IBufferWriter<byte> output, FrameType type, ulong requestId)
    {
        ArgumentNullException.ThrowIfNull(output);
        var span = output.GetSpan(FrameHeader.Size);
        new FrameHeader(type, 0, 0, requestId).WriteTo(span);
        output.Advance(FrameHeader.Size);
    }

    /// <summary>Writes a frame whose payload is given as raw bytes (relaying a payload unchanged).</summary>
    public static void WriteRaw(IBufferWriter<byte> output, FrameType type, ulong requestId, ReadOnlySpan<byte> payload)
    {
        ArgumentNullException.ThrowIfNull(output);
        var w = Begin(output, type, requestId, payload.Length, out var span);
        w.WriteRaw(payload);
        End(output, w, payload.Length, span);
    }

    // FORWARD := tier1Id:str8 client:endpoint TASK-payload
    /// <summary>Writes a FORWARD around an already-encoded TASK payload, without decoding it.</summary>
    public static void WriteForward(IBufferWriter<byte> output, ulong requestId, ReadOnlySpan<byte> tier1IdUtf8, in WireEndpoint client, ReadOnlySpan<byte> taskPayload)
    {
        ArgumentNullException.ThrowIfNull(output);
        var size = 1 + tier1IdUtf8.Length + client.WireSize + taskPayload.Length;
        var w = Begin(output, FrameType.Forward, requestId, size, out var span);
        w.WriteStr8(tier1IdUtf8);
        w.WriteEndpoint(client);
        w.WriteRaw(taskPayload);
        End(output, w, size, span);
    }

    // REDIRECT := serverId:str8 server:endpoint expiresUnixMs:i64 ticket:bytes16 altCount:u8 (altServerId:str8 alt:endpoint){altCount}
    /// <summary>Writes a REDIRECT without alternatives, without allocating.</summary>
    public static void WriteRedirect(IBufferWriter<byte> output, ulong requestId, ReadOnlySpan<byte> serverIdUtf8, in WireEndpoint server, long expiresUnixMs, ReadOnlySpan<byte> ticket)
    {
        ArgumentNullException.ThrowIfNull(output);
        var size = 1 + serverIdUtf8.Length + server.WireSize + 8 + 2 + ticket.Length + 1;
        var w = Begin(output, FrameType.Redirect, requestId, size, out var span);
        w.WriteStr8(serverIdUtf8);
        w.WriteEndpoint(server);
        w.WriteI64(expiresUnixMs);
        w.WriteBytes16(ticket);
        w.WriteU8(0);
        End(output, w, size, span);
    }

    // REJECT := code:u16 retryAfterMs:u32 message:str16
    /// <summary>Writes a REJECT.</summary>
    public static void WriteReject(IBufferWriter<byte> output, ulong requestId, RejectCode code, uint retryAfterMs, string message)
        => Write(output, requestId, new Reject(code, retryAfterMs, message));

    // EXPECT := ticketId:u64 client:endpoint expiresUnixMs:i64 kind:str8 attrs:attrs
    /// <summary>Writes an EXPECT from the fields of a received task, without allocating.</summary>
    public static void WriteExpect(IBufferWriter<byte> output, ulong ticketId, in WireEndpoint client, long expiresUnixMs, ReadOnlySpan<byte> kindUtf8, AttributeList attributes)
    {
        ArgumentNullException.ThrowIfNull(output);
        var size = 8 + client.WireSize + 8 + 1 + kindUtf8.Length + 1 + attributes.Raw.Length;
        var w = Begin(output, FrameType.Expect, 0, size, out var span);
        w.WriteU64(ticketId);
        w.WriteEndpoint(client);
        w.WriteI64(expiresUnixMs);
        w.WriteStr8(kindUtf8);
        w.WriteAttributes(attributes);
        End(output, w, size, span);
    }

    private static PayloadWriter Begin(IBufferWriter<byte> output, FrameType type, ulong requestId, int size, out Span<byte> span)
    {
        span = output.GetSpan(FrameHeader.Size + size);
        new FrameHeader(type, 0, size, requestId).WriteTo(span);
        return new PayloadWriter(span.Slice(FrameHeader.Size, size));
    }

    private static void End(IBufferWriter<byte> output, in PayloadWriter w, int size, Span<byte> span)
    {
        Debug.Assert(w.Written == size, "payload size mismatch");
        _ = span;
        output.Advance(FrameHeader.Size + size);
    }
}
