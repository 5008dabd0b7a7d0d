using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Vip.Protocol;

namespace Vip.Tests.Reliability.Harness;

/// <summary>A client that writes raw bytes and reads frames back, to play good and bad peers in limit tests.</summary>
internal sealed class RawClient : IDisposable
{
    private readonly Socket _socket;
    private readonly FrameReader _reader = new(new ProtocolLimits { MaxPayload = ProtocolLimits.MaxPayloadCeiling });
    private byte[] _buffer = new byte[64 * 1024];
    private int _count;

    private RawClient(Socket socket) => _socket = socket;

    /// <summary>Connects to <paramref name="server"/> from <paramref name="from"/> (a loopback address standing for a host).</summary>
    public static RawClient Connect(IPEndPoint server, IPAddress? from = null)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (from is not null)
        {
            s.Bind(new IPEndPoint(from, 0));
        }

        s.Connect(server);
        return new RawClient(s);
    }

    public Socket Socket => _socket;

    public void Send(ReadOnlySpan<byte> bytes) => _socket.Send(bytes);

    /// <summary>Sends one frame.</summary>
    public void Send<T>(ulong requestId, T message) where T : IFrameMessage<T>
    {
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.Write(w, requestId, message);
        _socket.Send(w.WrittenSpan);
    }

    /// <summary>The next frame, or null when the server closed the connection (FIN or reset) first.</summary>
    public (FrameType Type, ulong RequestId, byte[] Payload)? Receive(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var seq = new ReadOnlySequence<byte>(_buffer, 0, _count);
            var consumed = seq.Start;
            var examined = seq.End;
            if (_reader.TryParse(seq, ref consumed, ref examined, out var frame))
            {
                var result = (frame.Type, frame.RequestId, frame.Payload.ToArray());
                var used = (int)seq.Slice(0, consumed).Length;
                Buffer.BlockCopy(_buffer, used, _buffer, 0, _count - used);
                _count -= used;
                return result;
            }

            if (_count == _buffer.Length)
            {
                Array.Resize(ref _buffer, _buffer.Length * 2);
            }

            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                throw new TimeoutException($"no frame within {timeout.TotalSeconds} s");
            }

            _socket.ReceiveTimeout = (int)Math.Max(1, left.TotalMilliseconds);
            int n;
            try
            {
                n = _socket.Receive(_buffer, _count, _buffer.Length - _count, SocketFlags.None);
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.TimedOut || ex.SocketErrorCode == SocketError.WouldBlock)
            {
                throw new TimeoutException($"no frame within {timeout.TotalSeconds} s");
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
            {
                return null;
            }

            if (n == 0)
            {
                return null;
            }

            _count += n;
        }
    }

    /// <summary>True when the server closes the connection (FIN or reset) within <paramref name="timeout"/>; frames before it are skipped.</summary>
    public bool ClosedWithin(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        try
        {
            while (DateTime.UtcNow < deadline)
            {
                if (Receive(deadline - DateTime.UtcNow) is null)
                {
                    return true;
                }
            }
        }
        catch (TimeoutException)
        {
        }

        return false;
    }

    /// <summary>Sends PING and waits for the PONG; false when the connection is closed instead.</summary>
    public bool Ping(ulong id, TimeSpan timeout)
    {
        try
        {
            Send(id, new Ping("hi"u8.ToArray()));
        }
        catch (SocketException)
        {
            return false;
        }

        var answer = Receive(timeout);
        return answer is { Type: FrameType.Pong } a && a.RequestId == id;
    }

    public void Dispose() => _socket.Dispose();
}
