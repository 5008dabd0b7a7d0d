using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Vip.Protocol;
using Vip.Transport;

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
    private readonly LimitHits _limits;
    private readonly TimeProvider _time;
    private WireEndpoint _client;
    private int _inFlight;
    private long _idleSince;     // timestamp of the last bytes received or answer sent (idle timeout)
    private long _partialSince;  // timestamp when the unfinished frame's first byte arrived, 0 when none (frame timeout)
    private int _expired;        // 1 once CheckDeadlines closed the connection

    public Tier1Connection(Socket socket, Tier1Dispatcher dispatcher, Tier1Options options, TrustedSources trusted, ILogger logger, LimitHits limits, TimeProvider time)
    {
        _limits = limits;
        _time = time;
        _idleSince = time.GetTimestamp();
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

    /// <summary>True when the peer is a trusted source (a VIP box), not counted per source.</summary>
    public bool Trusted => _trusted;

    /// <summary>The peer's address (for per-source accounting).</summary>
    public IPAddress PeerAddress => _peer.Address;

    /// <summary>
    /// Called by the server's timer: closes the connection when a frame has been unfinished for longer than
    /// <see cref="Tier1Options.FrameTimeout"/>, or when it is idle (nothing in flight, nothing received since its last
    /// answer went out) for longer than <see cref="Tier1Options.IdleTimeout"/>. Reads two timestamps; allocates nothing unless it closes.
    /// </summary>
    public void CheckDeadlines(long now)
    {
        var partial = Volatile.Read(ref _partialSince);
        if (partial != 0 && _time.GetElapsedTime(partial, now) > _options.FrameTimeout)
        {
            Expire("frame_timeout", $"a frame was not complete within {_options.FrameTimeout.TotalSeconds:0.###} s");
        }
        else if (partial == 0 && InFlight == 0 && _time.GetElapsedTime(Volatile.Read(ref _idleSince), now) > _options.IdleTimeout)
        {
            Expire("idle_timeout", $"idle for {_options.IdleTimeout.TotalSeconds:0.###} s");
        }
    }

    private void Expire(string limit, string detail)
    {
        if (Interlocked.Exchange(ref _expired, 1) == 0)
        {
            _limits.Hit(limit, _peer, detail);
            _socket.Dispose();
        }
    }

    // After each receive: remember when bytes last came, and since when an unfinished frame has been waiting.
    private void NoteReceived(int leftOver)
    {
        var now = _time.GetTimestamp();
        Volatile.Write(ref _idleSince, now);
        if (leftOver == 0)
        {
            Volatile.Write(ref _partialSince, 0);
        }
        else if (Volatile.Read(ref _partialSince) == 0)
        {
            Volatile.Write(ref _partialSince, now);
        }
    }

    public FrameOutbox? Deliver(ulong clientRequestId, SocketAddress? replyTo, FrameType type, ReadOnlySpan<byte> payload)
    {
        // The idle clock restarts with every answer, written before the count drops so the timer never sees nothing in
        // flight with the old time: measured from the last bytes received alone, a client whose tasks took longer than
        // IdleTimeout to answer was closed as idle the moment it got its answers.
        Volatile.Write(ref _idleSince, _time.GetTimestamp());
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

            // Bytes that came with the PROXY header are processed before the next read. While tasks are in flight the
            // client is active (a waiting client sends its next task as soon as its answer arrives): the receive buffer
            // is kept, which saves the zero-byte read (one system call per read); an idle connection holds none.
            var pending = receiver.Available > 0;
            while (pending || await receiver.ReceiveAsync(holdBuffer: InFlight > 0).ConfigureAwait(false))
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
                        _limits.Hit("too_large", _peer, ex.Message);
                        WriteReject(id, RejectCode.TooLarge, ex.Message);
                    }

                    keepOpen = false;
                }

                _batch.FlushAll();
                NoteReceived(receiver.Available);
                if (!keepOpen)
                {
                    await CloseGentlyAsync().ConfigureAwait(false);
                    return;
                }

                if (_outbox.Backlog > _options.MaxConnectionBacklogBytes)
                {
                    // We stop reading while the client does not read its answers: our pause, not the client's, so the
                    // frame and idle clocks restart when reading resumes.
                    Volatile.Write(ref _partialSince, 0);
                    while (_outbox.Backlog > _options.MaxConnectionBacklogBytes && !_outbox.IsClosed)
                    {
                        await _drained.WaitAsync().ConfigureAwait(false);
                    }

                    NoteReceived(receiver.Available);
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
                    _limits.Hit("max_in_flight", _peer, $"more than {_options.MaxInFlightPerConnection} tasks in flight on one connection");
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
        var reader = new ProxyProtocolReader(_options.MaxProxyHeaderLength);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        deadline.CancelAfter(_options.ProxyHeaderTimeout);
        try
        {
            while (true)
            {
                receiver.EnsureCapacity(ProxyProtocol.FixedHeaderLength + _options.MaxProxyHeaderLength);
                if (receiver.Available > 0)
                {
                    // Once per connection: the copy keeps the parse on the shared codec's sequence API.
                    var input = new ReadOnlySequence<byte>(receiver.Data.ToArray());
                    var consumed = input.Start;
                    var examined = input.End;
                    if (reader.TryParse(input, ref consumed, ref examined, out var header))
                    {
                        receiver.Consume((int)input.Slice(0, consumed).Length);
                        if (!header.IsLocal && header.Source.Family != 0)
                        {
                            _client = header.Source;
                        }

                        return true;
                    }
                }

                if (!await receiver.ReceiveAsync(deadline.Token).ConfigureAwait(false))
                {
                    return false;
                }
            }
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            _limits.Hit("proxy_header_timeout", _peer, $"no PROXY header within {_options.ProxyHeaderTimeout.TotalSeconds:0.###} s");
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
