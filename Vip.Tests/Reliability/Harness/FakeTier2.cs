using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Vip.Protocol;

namespace Vip.Tests.Reliability.Harness;

/// <summary>
/// A stand-in tier-2 daemon for in-process limit tests of tier-1: answers PING with PONG and every FORWARD with a
/// REDIRECT to a fixed app server (the FORWARD's client address is recorded). Listens on a loopback port 0.
/// </summary>
internal sealed class FakeTier2 : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _accepted = [];
    private readonly Task _loop;
    private long _forwards;

    public FakeTier2(IPAddress address)
    {
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(address, 0));
        _listener.Listen(64);
        _loop = Task.Run(AcceptLoopAsync);
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    /// <summary>How long each FORWARD waits before its REDIRECT is sent (PINGs are answered at once). Default none.</summary>
    public TimeSpan AnswerDelay { get; set; }

    /// <summary>FORWARDs answered so far.</summary>
    public long Forwards => Interlocked.Read(ref _forwards);

    /// <summary>The app server every REDIRECT names.</summary>
    public static WireEndpoint AppServer { get; } = WireEndpoint.From(IPAddress.Parse("127.0.0.1"), 9);

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket s;
            try
            {
                s = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            lock (_accepted)
            {
                _accepted.Add(s);
            }

            _ = Task.Run(() => ServeAsync(s));
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        var reader = new FrameReader();
        await using var stream = new NetworkStream(socket, ownsSocket: true);
        var input = PipeReader.Create(stream);
        var output = new ArrayBufferWriter<byte>();
        using var writeLock = new SemaphoreSlim(1);
        var delayed = new List<Task>();
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(_stop.Token);
                var buffer = result.Buffer;
                var consumed = buffer.Start;
                var examined = buffer.End;
                output.ResetWrittenCount();
                while (reader.TryParse(buffer, ref consumed, ref examined, out var frame))
                {
                    switch (frame.Type)
                    {
                        case FrameType.Ping:
                            FrameWriter.WriteRaw(output, FrameType.Pong, frame.RequestId, frame.Payload.ToArray());
                            break;
                        case FrameType.Forward:
                            _ = ForwardRequest.Read(frame.Payload.ToArray());
                            Interlocked.Increment(ref _forwards);
                            if (AnswerDelay > TimeSpan.Zero)
                            {
                                delayed.Add(AnswerLaterAsync(stream, writeLock, frame.RequestId));
                            }
                            else
                            {
                                FrameWriter.WriteRedirect(output, frame.RequestId, "app-1"u8, AppServer, DateTimeOffset.UtcNow.AddSeconds(30).ToUnixTimeMilliseconds(), new byte[32]);
                            }

                            break;
                    }
                }

                if (output.WrittenCount > 0)
                {
                    await writeLock.WaitAsync(_stop.Token);
                    try
                    {
                        await stream.WriteAsync(output.WrittenMemory, _stop.Token);
                    }
                    finally
                    {
                        writeLock.Release();
                    }
                }

                input.AdvanceTo(consumed, examined);
                if (result.IsCompleted)
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
        }

        await Task.WhenAll(delayed);
    }

    private async Task AnswerLaterAsync(Stream stream, SemaphoreSlim writeLock, ulong requestId)
    {
        try
        {
            await Task.Delay(AnswerDelay, _stop.Token);
            var output = new ArrayBufferWriter<byte>();
            FrameWriter.WriteRedirect(output, requestId, "app-1"u8, AppServer, DateTimeOffset.UtcNow.AddSeconds(30).ToUnixTimeMilliseconds(), new byte[32]);
            await writeLock.WaitAsync(_stop.Token);
            try
            {
                await stream.WriteAsync(output.WrittenMemory, _stop.Token);
            }
            finally
            {
                writeLock.Release();
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        lock (_accepted)
        {
            foreach (var s in _accepted)
            {
                s.Dispose();
            }
        }

        await _loop;
        _stop.Dispose();
    }
}
