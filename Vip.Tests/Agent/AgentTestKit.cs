using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Vip.Protocol;
using Vip.Transport;

namespace Vip.Tests.Agent;

/// <summary>A frame received by a test peer, with its payload copied.</summary>
internal sealed record ReceivedFrame(FrameType Type, ulong RequestId, byte[] Payload);

/// <summary>
/// A tier-2 control port played by the test: accepts control links, answers REGISTER and DEREGISTER with
/// REGISTER-OK, records every frame, and can send EXPECT notices or drop the links.
/// </summary>
internal sealed class FakeTier2 : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly List<FrameConnection> _links = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;

    public FakeTier2(uint heartbeatMs = 100, uint expireMs = 300)
    {
        HeartbeatMs = heartbeatMs;
        ExpireMs = expireMs;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(16);
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _accept = AcceptAsync();
    }

    public uint HeartbeatMs { get; }

    public uint ExpireMs { get; }

    public IPEndPoint EndPoint { get; }

    public Channel<ReceivedFrame> Frames { get; } = Channel.CreateUnbounded<ReceivedFrame>();

    public int Accepted { get; private set; }

    public async Task<ReceivedFrame> NextAsync(FrameType type, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var f = await Frames.Reader.ReadAsync(cts.Token);
            if (f.Type == type)
            {
                return f;
            }
        }
    }

    public async Task SendExpectAsync(Expect expect)
    {
        FrameConnection[] links;
        lock (_links)
        {
            links = [.. _links];
        }

        foreach (var l in links)
        {
            try
            {
                await l.SendAsync(0, expect);
            }
            catch (IOException)
            {
            }
        }
    }

    public void DropLinks()
    {
        lock (_links)
        {
            foreach (var l in _links)
            {
                l.Close();
            }

            _links.Clear();
        }
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var s = await _listener.AcceptAsync(_stop.Token);
                Accepted++;
                var c = new FrameConnection(s);
                lock (_links)
                {
                    _links.Add(c);
                }

                _ = c.RunAsync(OnFrame, _stop.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
    }

    private void OnFrame(FrameConnection c, in Frame frame)
    {
        Frames.Writer.TryWrite(new ReceivedFrame(frame.Type, frame.RequestId, frame.Payload.ToArray()));
        if (frame.Type is FrameType.Register or FrameType.Deregister)
        {
            var id = frame.RequestId;
            _ = Task.Run(async () =>
            {
                try
                {
                    await c.SendAsync(id, new RegisterOk(HeartbeatMs, ExpireMs));
                }
                catch (IOException)
                {
                }
            });
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        DropLinks();
        await _accept;
        _stop.Dispose();
    }
}

/// <summary>A client of an app server: connects from a chosen loopback address, sends frames, reads answers.</summary>
internal sealed class TestPeer : IAsyncDisposable
{
    private readonly FrameConnection _connection;
    private readonly Task _run;

    private TestPeer(FrameConnection connection)
    {
        _connection = connection;
        _run = connection.RunAsync((c, in f) => Frames.Writer.TryWrite(new ReceivedFrame(f.Type, f.RequestId, f.Payload.ToArray())));
        _ = _run.ContinueWith(_ => Frames.Writer.TryComplete(), TaskScheduler.Default);
    }

    public Channel<ReceivedFrame> Frames { get; } = Channel.CreateUnbounded<ReceivedFrame>();

    public FrameConnection Connection => _connection;

    public static async Task<TestPeer> ConnectAsync(IPEndPoint server, IPAddress? from = null)
    {
        var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (from is not null)
        {
            socket.Bind(new IPEndPoint(from, 0));
        }

        await socket.ConnectAsync(server);
        return new TestPeer(new FrameConnection(socket));
    }

    public Task SendAsync<T>(ulong id, T message) where T : IFrameMessage<T> => _connection.SendAsync(id, message).AsTask();

    /// <summary>The next frame, or null when the server closed the connection first.</summary>
    public async Task<ReceivedFrame?> NextAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        try
        {
            return await Frames.Reader.ReadAsync(cts.Token);
        }
        catch (ChannelClosedException)
        {
            return null;
        }
    }

    /// <summary>True when the server closes the connection within the timeout.</summary>
    public async Task<bool> ClosedAsync(TimeSpan? timeout = null)
    {
        try
        {
            await _run.WaitAsync(timeout ?? TimeSpan.FromSeconds(10));
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _connection.DisposeAsync();
        await _run;
    }
}

internal static class Eventually
{
    /// <summary>Waits until <paramref name="condition"/> holds, polling; fails the test after <paramref name="timeout"/>.</summary>
    public static async Task TrueAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail("timed out waiting for: " + what);
            }

            await Task.Delay(10);
        }
    }
}
