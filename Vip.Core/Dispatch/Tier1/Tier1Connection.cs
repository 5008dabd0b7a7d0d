using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Vip.Protocol;

namespace Vip.Dispatch.Tier1;

/// <summary>
/// One client connection (directly, or from a VIP box): reads the PROXY v2 header when the peer is a trusted
/// source, then TASK and PING frames, many in flight, each answered by its request id.
/// </summary>
internal sealed class Tier1Connection : IAnswerSink
{
    private readonly Socket _socket;
    private readonly Tier1Dispatcher _dispatcher;
    private readonly Tier1Options _options;
    private readonly ILogger _logger;
    private readonly FrameOutbox _outbox;
    private readonly AsyncSignal _drained = new();
    private readonly FlushBatch _batch = new();
    private readonly IPEndPoint _peer;
    private readonly bool _trusted;
    private WireEndpoint _client;
    private int _inFlight;

    public Tier1Connection(Socket socket, Tier1Dispatcher dispatcher, Tier1Options options, TrustedSources trusted, ILogger logger)
    {
        _socket = socket;
        _dispatcher = dispatcher;
        _options = options;
        _logger = logger;
        _peer = (IPEndPoint)socket.RemoteEndPoint!;
        _client = WireEndpoint.From(_peer);
        _trusted = trusted.Contains(_client);
        _outbox = new FrameOutbox(socket, 4096, static o => o.Close()) { Drained = _drained };
    }

    /// <summary>The address tasks are forwarded with: the PROXY header's source, or the peer.</summary>
    public WireEndpoint Client => _client;

    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Closes the socket at once (server stop).</summary>
    public void Abort() => _socket.Dispose();

    public FrameOutbox? Deliver(ulong clientRequestId, SocketAddress? replyTo, FrameType type, ReadOnlySpan<byte> payload)
    {
        Interlocked.Decrement(ref _inFlight);
        return _outbox.TryWrite(type, clientRequestId, payload, out var flush) && flush ? _outbox : null;
    }

    public async Task RunAsync(CancellationToken stopping)
    {
        using var receiver = new SocketReceiver(_socket, _options.Limits.MaxPayload, releaseWhenIdle: true);
        using var registration = stopping.Register(static s => ((Socket)s!).Dispose(), _socket);
        try
        {
            if (_trusted && !await ReadProxyHeaderAsync(receiver, stopping).ConfigureAwait(false))
            {
                return;
            }

            // Bytes that came with the PROXY header are processed before the next read.
            var pending = receiver.Available > 0;
            while (pending || await receiver.ReceiveAsync().ConfigureAwait(false))
            {
                pending = false;
                var keepOpen = true;
                try
                {
                    while (keepOpen && receiver.TryReadFrame(out var header, out var payload))
                    {
                        keepOpen = OnFrame(header, payload);
                    }
                }
                catch (VipProtocolException ex)
                {
                    // The header itself is bad: answer when the link can still answer (a payload over the cap), then close.
                    Tier1Log.ClientProtocolError(_logger, _peer, ex.Message);
                    if (ex.Error == ProtocolError.TooLarge && receiver.TryPeekRequestId(out var id))
                    {
                        WriteReject(id, RejectCode.TooLarge, ex.Message);
                    }

                    keepOpen = false;
                }

                _batch.FlushAll();
                if (!keepOpen)
                {
                    await CloseGentlyAsync().ConfigureAwait(false);
                    return;
                }

                while (_outbox.Backlog > _options.MaxConnectionBacklogBytes && !_outbox.IsClosed)
                {
                    await _drained.WaitAsync().ConfigureAwait(false);
                }

                if (_outbox.IsClosed)
                {
                    return;
                }
            }
        }
        catch (VipProtocolException ex)
        {
            Tier1Log.ClientProtocolError(_logger, _peer, ex.Message);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // Reset, abort or stop: the connection is over.
        }
        finally
        {
            _outbox.Close();
            _socket.Dispose();
            _outbox.Dispose();
        }
    }

    // Returns false when the connection must close after this frame.
    private bool OnFrame(in FrameHeader header, ReadOnlySpan<byte> payload)
    {
        switch (header.Type)
        {
            case FrameType.Task:
                if (Interlocked.Increment(ref _inFlight) > _options.MaxInFlightPerConnection)
                {
                    Interlocked.Decrement(ref _inFlight);
                    Tier1Metrics.Rejects.Add(1);
                    Write(FrameType.Reject, header.RequestId, _dispatcher.TooManyInFlight);
                    return true;
                }

                try
                {
                    _dispatcher.Submit(this, header.RequestId, payload, _client, null, _batch);
                }
                catch (VipProtocolException ex)
                {
                    Interlocked.Decrement(ref _inFlight);
                    Tier1Log.ClientProtocolError(_logger, _peer, ex.Message);
                    WriteReject(header.RequestId, ex.RejectCode, ex.Message);
                    return false;
                }

                return true;
            case FrameType.Ping:
                if (payload.Length > ProtocolLimits.MaxPingPayload)
                {
                    WriteReject(header.RequestId, RejectCode.TooLarge, "ping payload over 64 bytes");
                    return false;
                }

                Write(FrameType.Pong, header.RequestId, payload);
                return true;
            default:
                var message = $"tier-1 does not accept {header.Type} frames";
                Tier1Log.ClientProtocolError(_logger, _peer, message);
                WriteReject(header.RequestId, RejectCode.Malformed, message);
                return false;
        }
    }

    private void Write(FrameType type, ulong requestId, ReadOnlySpan<byte> payload)
    {
        if (_outbox.TryWrite(type, requestId, payload, out var flush) && flush)
        {
            _batch.Add(_outbox);
        }
    }

    private void WriteReject(ulong requestId, RejectCode code, string message)
    {
        Tier1Metrics.Rejects.Add(1);
        Write(FrameType.Reject, requestId, Tier1Dispatcher.EncodeReject(code, 0, message));
    }

    private async Task<bool> ReadProxyHeaderAsync(SocketReceiver receiver, CancellationToken stopping)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        deadline.CancelAfter(_options.ProxyHeaderTimeout);
        try
        {
            while (receiver.Available < ProxyHeader.FixedSize)
            {
                if (!await receiver.ReceiveAsync(deadline.Token).ConfigureAwait(false))
                {
                    return false;
                }
            }

            var length = ProxyHeader.ReadLength(receiver.Data, _options.MaxProxyHeaderLength);
            receiver.EnsureCapacity(length);
            while (receiver.Available < length)
            {
                if (!await receiver.ReceiveAsync(deadline.Token).ConfigureAwait(false))
                {
                    return false;
                }
            }

            var source = ProxyHeader.Parse(receiver.Data[..length]);
            receiver.Consume(length);
            if (source.Family != 0)
            {
                _client = source;
            }

            return true;
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            Tier1Log.ClientProtocolError(_logger, _peer, "no PROXY header within the deadline");
            return false;
        }
    }

    private async Task CloseGentlyAsync()
    {
        // Let the REJECT reach the client before the close.
        if (_outbox.Backlog > 0)
        {
            var wait = _drained.WaitAsync().AsTask();
            await Task.WhenAny(wait, Task.Delay(TimeSpan.FromSeconds(1))).ConfigureAwait(false);
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }
}
