using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Vip.Protocol;
using Vip.Transport;

namespace Vip.Tests.Client;

/// <summary>A small in-test tier-2 daemon: accepts FORWARDs and answers as its <see cref="Behavior"/> says.</summary>
internal sealed class FakeTier2 : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly ConcurrentDictionary<FrameConnection, byte> _connections = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;

    public FakeTier2(string name, IPAddress? address = null, int port = 0)
    {
        Name = name;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Bind(new IPEndPoint(address ?? IPAddress.Loopback, port));
        _listener.Listen(128);
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        Behavior = DefaultRedirect;
        _accept = AcceptAsync();
    }

    public string Name { get; }

    public IPEndPoint EndPoint { get; }

    /// <summary>Where REDIRECTs point (default: a made-up address).</summary>
    public IPEndPoint AppServer { get; set; } = new(IPAddress.Parse("127.0.0.9"), 9999);

    /// <summary>Returns a <see cref="Redirect"/>, a <see cref="Reject"/>, or null (never answer).</summary>
    public Func<ForwardRequest, object?> Behavior { get; set; }

    public bool AnswerPings { get; set; } = true;

    /// <summary>How long each FORWARD's answer waits before it is sent (PINGs are answered at once). Default none.</summary>
    public TimeSpan AnswerDelay { get; set; }

    public ConcurrentQueue<ForwardRequest> Received { get; } = new();

    public ConcurrentQueue<ulong> ReceivedIds { get; } = new();

    public ConcurrentQueue<object> Answers { get; } = new();

    public int Pings;

    public int ConnectionCount => _connections.Count;

    public Redirect DefaultRedirect(ForwardRequest f)
        => new(Name, WireEndpoint.From(AppServer), DateTimeOffset.UtcNow.AddSeconds(30).ToUnixTimeMilliseconds(),
            Encoding.UTF8.GetBytes($"{Name}|{f.Task.ClientId}|{f.Client}|{f.Tier1Id}"), []);

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket s;
            try
            {
                s = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }

            var c = new FrameConnection(s) { State = this };
            _connections[c] = 0;
            _ = Task.Run(async () =>
            {
                try
                {
                    await c.RunAsync(static (FrameConnection conn, in Frame f) => ((FakeTier2)conn.State!).OnFrame(conn, f));
                }
                catch (VipProtocolException)
                {
                }
                finally
                {
                    _connections.TryRemove(c, out _);
                    await c.DisposeAsync();
                }
            });
        }
    }

    private void OnFrame(FrameConnection conn, in Frame f)
    {
        if (f.Type == FrameType.Ping)
        {
            Interlocked.Increment(ref Pings);
            if (AnswerPings)
            {
                var data = f.Payload.ToArray();
                var id = f.RequestId;
                _ = Send(conn, w => FrameWriter.WriteRaw(w, FrameType.Pong, id, data));
            }

            return;
        }

        if (f.Type != FrameType.Forward)
        {
            return;
        }

        var forward = ForwardRequest.Read(f.Payload.ToArray());
        var requestId = f.RequestId;
        Received.Enqueue(forward);
        ReceivedIds.Enqueue(requestId);
        var answer = Behavior(forward);
        if (answer is not null)
        {
            Answers.Enqueue(answer);
        }

        var delay = AnswerDelay;
        switch (answer)
        {
            case Redirect r:
                _ = Send(conn, w => FrameWriter.Write(w, requestId, r), delay);
                break;
            case Reject j:
                _ = Send(conn, w => FrameWriter.Write(w, requestId, j), delay);
                break;
        }
    }

    private async Task Send(FrameConnection conn, Action<IBufferWriter<byte>> write, TimeSpan delay = default)
    {
        try
        {
            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay, _stop.Token);
            }

            await conn.SendAsync(static (w, a) => a(w), write);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Closes the listener and every connection (a crashed daemon).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        foreach (var c in _connections.Keys)
        {
            await c.DisposeAsync();
        }

        await _accept;
    }
}

/// <summary>A small in-test app server: accepts a CLAIM (tickets starting with "bad" are denied), then answers TASKs with RESULT = kind + body.</summary>
internal sealed class FakeAppServer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;

    public FakeAppServer(string id, IPAddress? address = null)
    {
        Id = id;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(address ?? IPAddress.Loopback, 0));
        _listener.Listen(128);
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _accept = AcceptAsync();
    }

    public string Id { get; }

    public IPEndPoint EndPoint { get; }

    public ConcurrentQueue<(IPEndPoint Peer, byte[] Ticket)> Claims { get; } = new();

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket s;
            try
            {
                s = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }

            var c = new FrameConnection(s) { State = this };
            _ = Task.Run(async () =>
            {
                try
                {
                    await c.RunAsync(static (FrameConnection conn, in Frame f) => ((FakeAppServer)conn.State!).OnFrame(conn, f));
                }
                catch (VipProtocolException)
                {
                }
                finally
                {
                    await c.DisposeAsync();
                }
            });
        }
    }

    private void OnFrame(FrameConnection conn, in Frame f)
    {
        var id = f.RequestId;
        if (f.Type == FrameType.Claim)
        {
            var claim = Claim.Read(f.Payload.ToArray());
            Claims.Enqueue((conn.RemoteEndPoint, claim.Ticket.ToArray()));
            if (Encoding.UTF8.GetString(claim.Ticket.Span).StartsWith("bad", StringComparison.Ordinal))
            {
                _ = conn.SendAsync(id, new ClaimDenied(ClaimDenyReason.BadSignature, "forged")).AsTask();
            }
            else
            {
                _ = conn.SendAsync(id, new ClaimOk(Id)).AsTask();
            }
        }
        else if (f.Type == FrameType.Task)
        {
            var task = TaskRequest.Read(f.Payload.ToArray());
            var output = Encoding.UTF8.GetBytes($"{Id}:{task.Kind}:{Encoding.UTF8.GetString(task.Body.Span)}");
            _ = conn.SendAsync(id, new TaskResult(0, output)).AsTask();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        await _accept;
    }
}

/// <summary>A raw TCP client speaking frames, for asserting exactly what tier-1 answers.</summary>
internal sealed class RawFrameClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[1 << 20];
    private int _start;
    private int _end;

    private RawFrameClient(Socket socket) => _socket = socket;

    public static async Task<RawFrameClient> ConnectAsync(IPEndPoint server, IPAddress? local = null)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (local is not null)
        {
            s.Bind(new IPEndPoint(local, 0));
        }

        await s.ConnectAsync(server);
        return new RawFrameClient(s);
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    public Task SendAsync(byte[] bytes) => _socket.SendAsync(bytes, SocketFlags.None);

    public Task SendTaskAsync(ulong id, TaskRequest task) => SendAsync(Frame(id, task));

    public static byte[] Frame<T>(ulong id, T message) where T : IFrameMessage<T>
    {
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.Write(w, id, message);
        return w.WrittenSpan.ToArray();
    }

    /// <summary>Reads the next frame; null when the peer closed the connection.</summary>
    public async Task<(FrameHeader Header, byte[] Payload)?> ReadAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            if (_end - _start >= FrameHeader.Size)
            {
                var h = FrameHeader.Read(_buffer.AsSpan(_start, _end - _start), ProtocolLimits.MaxPayloadCeiling);
                if (_end - _start >= FrameHeader.Size + h.Length)
                {
                    var payload = _buffer.AsSpan(_start + FrameHeader.Size, h.Length).ToArray();
                    _start += FrameHeader.Size + h.Length;
                    return (h, payload);
                }
            }

            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            int n;
            try
            {
                n = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cts.Token);
            }
            catch (SocketException)
            {
                return null;
            }

            if (n == 0)
            {
                return null;
            }

            _end += n;
        }
    }

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}

internal static class Tasks
{
    public static TaskRequest Make(string client = "alice", string kind = "echo", string requirement = "", string body = "hi", params (string Key, string Value)[] attrs)
        => new(client, kind, attrs.Select(a => KeyValuePair.Create(a.Key, a.Value)).ToArray(), requirement, Encoding.UTF8.GetBytes(body));

    /// <summary>Polls <paramref name="condition"/> until it holds or <paramref name="timeout"/> passes.</summary>
    public static async Task<bool> WaitUntilAsync(Func<bool> condition, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (DateTime.UtcNow < deadline)
        {
            if (condition())
            {
                return true;
            }

            await Task.Delay(10);
        }

        return condition();
    }
}
