using System.Buffers;
using System.Text;
using Vip.Protocol;

namespace Vip.Dispatch.Tier2;

/// <summary>One ranked alternative as the dispatcher holds it: the server id already in UTF-8, and its address.</summary>
internal readonly record struct AlternativeTarget(byte[] ServerIdUtf8, WireEndpoint Endpoint);

/// <summary>The frames a tier-2 daemon writes on its hot path, written without allocating.</summary>
internal static class Tier2Frames
{
    // REDIRECT := serverId:str8 server:endpoint expiresUnixMs:i64 ticket:bytes16
    //             altCount:u8 (altServerId:str8 alt:endpoint){altCount}
    public static void WriteRedirect(IBufferWriter<byte> output, ulong requestId, ReadOnlySpan<byte> serverIdUtf8, in WireEndpoint server,
        long expiresUnixMs, ReadOnlySpan<byte> ticket, ReadOnlySpan<AlternativeTarget> alternatives)
    {
        var count = Math.Min(alternatives.Length, ProtocolLimits.MaxAlternatives);
        var size = 1 + serverIdUtf8.Length + server.WireSize + 8 + 2 + ticket.Length + 1;
        for (var i = 0; i < count; i++)
        {
            size += 1 + alternatives[i].ServerIdUtf8.Length + alternatives[i].Endpoint.WireSize;
        }

        var span = output.GetSpan(FrameHeader.Size + size);
        new FrameHeader(FrameType.Redirect, 0, size, requestId).WriteTo(span);
        var w = new PayloadWriter(span.Slice(FrameHeader.Size, size));
        w.WriteStr8(serverIdUtf8);
        w.WriteEndpoint(server);
        w.WriteI64(expiresUnixMs);
        w.WriteBytes16(ticket);
        w.WriteU8((byte)count);
        for (var i = 0; i < count; i++)
        {
            w.WriteStr8(alternatives[i].ServerIdUtf8);
            w.WriteEndpoint(alternatives[i].Endpoint);
        }

        output.Advance(FrameHeader.Size + size);
    }

    // REJECT := code:u16 retryAfterMs:u32 message:str16
    public static void WriteReject(IBufferWriter<byte> output, ulong requestId, RejectCode code, uint retryAfterMs, ReadOnlySpan<byte> messageUtf8)
    {
        if (messageUtf8.Length > ProtocolLimits.MaxStr16)
        {
            messageUtf8 = messageUtf8[..ProtocolLimits.MaxStr16];
        }

        var size = 2 + 4 + 2 + messageUtf8.Length;
        var span = output.GetSpan(FrameHeader.Size + size);
        new FrameHeader(FrameType.Reject, 0, size, requestId).WriteTo(span);
        var w = new PayloadWriter(span.Slice(FrameHeader.Size, size));
        w.WriteU16((ushort)code);
        w.WriteU32(retryAfterMs);
        w.WriteStr16(messageUtf8);
        output.Advance(FrameHeader.Size + size);
    }

    /// <summary>A REJECT with a message built at the time (error paths only: it allocates).</summary>
    public static void WriteReject(IBufferWriter<byte> output, ulong requestId, RejectCode code, uint retryAfterMs, string message)
    {
        var bytes = Encoding.UTF8.GetBytes(message);
        var max = ProtocolLimits.MaxStr16;
        if (bytes.Length > max)
        {
            // Cut on a character boundary so the message stays valid UTF-8.
            while (max > 0 && (bytes[max] & 0xC0) == 0x80)
            {
                max--;
            }

            bytes = bytes[..max];
        }

        WriteReject(output, requestId, code, retryAfterMs, bytes);
    }

    // PONG := the PING payload echoed
    public static void WritePong(IBufferWriter<byte> output, ulong requestId, ReadOnlySpan<byte> payload)
        => FrameWriter.WriteRaw(output, FrameType.Pong, requestId, payload);
}
