using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Vip.Protocol;

namespace Vip.Client;

/// <summary>Socket helpers shared by the client: connect from a chosen local address, read exactly one frame.</summary>
internal static class ClientSockets
{
    public static async Task<Socket> ConnectAsync(EndPoint remote, IPAddress? local, TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        var socket = new Socket(remote.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (local is not null)
            {
                socket.Bind(new IPEndPoint(local, 0));
            }

            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(timeout);
            try
            {
                await socket.ConnectAsync(remote, cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"connecting to {remote} timed out after {timeout.TotalMilliseconds:0} ms");
            }

            _ = time;
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Reads exactly one frame (and not a byte more) from <paramref name="socket"/>.</summary>
    public static async Task<(FrameHeader Header, byte[] Payload)> ReadFrameAsync(Socket socket, int maxPayload, CancellationToken cancellationToken)
    {
        var head = new byte[FrameHeader.Size];
        await ReadExactlyAsync(socket, head, cancellationToken).ConfigureAwait(false);
        var header = FrameHeader.Read(head, maxPayload);
        var payload = new byte[header.Length];
        await ReadExactlyAsync(socket, payload, cancellationToken).ConfigureAwait(false);
        return (header, payload);
    }

    private static async Task ReadExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException("the peer closed the connection");
            }

            buffer = buffer[n..];
        }
    }

    public static byte[] EncodeFrame<T>(ulong requestId, T message) where T : IFrameMessage<T>
    {
        var writer = new System.Buffers.ArrayBufferWriter<byte>(FrameHeader.Size + message.PayloadSize);
        FrameWriter.Write(writer, requestId, message);
        return writer.WrittenSpan.ToArray();
    }

    public static ulong PeekRequestId(ReadOnlySpan<byte> frame) => BinaryPrimitives.ReadUInt64BigEndian(frame[10..]);
}

/// <summary>An answer frame kept beyond the receive loop.</summary>
internal readonly record struct AnswerFrame(FrameType Type, byte[] Payload);
