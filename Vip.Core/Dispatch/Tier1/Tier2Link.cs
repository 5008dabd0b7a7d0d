using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Vip.Protocol;

namespace Vip.Dispatch.Tier1;

/// <summary>
/// One persistent, multiplexed connection to a tier-2 daemon: connects and reconnects with jittered backoff,
/// carries FORWARDs (request ids from the shared <see cref="PendingTable"/>), reads answers, and tracks health
/// (connected, PONG freshness, consecutive timeouts) and load (requests in flight).
/// </summary>
internal sealed class Tier2Link
{
    private const uint PingIndex = uint.MaxValue;
    private readonly Tier1Dispatcher _dispatcher;
    private readonly Tier1Options _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly int _maxInFlight;
    private readonly FlushBatch _batch = new();
    private volatile FrameOutbox? _outbox;
    private volatile Socket? _socket;
    private volatile bool _stale;
    private int _inFlight;
    private int _failures;
    private long _lastPong;
    private long _forwarded;
    private long _failuresTotal;
    private uint _pingSeq;
    private bool _outOfRotation;

    public Tier2Link(int index, EndPoint endPoint, Tier1Dispatcher dispatcher, Tier1Options options, TimeProvider time, ILogger logger)
    {
        Index = index;
        EndPoint = endPoint;
        _dispatcher = dispatcher;
        _options = options;
        _time = time;
        _logger = logger;
        _maxInFlight = options.MaxInFlightPerTier2;
        Seed = Tier1Dispatcher.Mix(Tier1Dispatcher.Fnv1a(Encoding.UTF8.GetBytes(endPoint.ToString() ?? string.Empty)));
    }

    public int Index { get; }

    public EndPoint EndPoint { get; }

    /// <summary>The link's rendezvous-hash seed, from its address, so every tier-1 ranks the same way.</summary>
    public ulong Seed { get; }

    public bool IsConnected => _outbox is not null;

    /// <summary>True when the link may take a new request.</summary>
    public bool IsAvailable => _outbox is not null && !_stale && Volatile.Read(ref _failures) < _options.FailureThreshold
        && Volatile.Read(ref _inFlight) < _maxInFlight;

    public int InFlight => Volatile.Read(ref _inFlight);

    public long Forwarded => Interlocked.Read(ref _forwarded);

    public long FailuresTotal => Interlocked.Read(ref _failuresTotal);

    /// <summary>Queues the slot's FORWARD with its current link request id; false when the link is not connected.</summary>
    public bool TrySend(PendingForward slot, FlushBatch batch)
    {
        var outbox = _outbox;
        if (outbox is null || !outbox.TryWriteFrame(slot.Frame.AsSpan(0, slot.FrameLength), slot.LinkRequestId, out var flush))
        {
            return false;
        }

        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _forwarded);
        if (flush)
        {
            batch.Add(outbox);
        }

        return true;
    }

    public void OnAnswered()
    {
        Interlocked.Decrement(ref _inFlight);
        if (Volatile.Read(ref _failures) != 0)
        {
            Volatile.Write(ref _failures, 0);
        }
    }

    public void OnAbandoned() => Interlocked.Decrement(ref _inFlight);

    public void OnTimeout()
    {
        Interlocked.Decrement(ref _inFlight);
        Interlocked.Increment(ref _failuresTotal);
        Interlocked.Increment(ref _failures);
    }

    /// <summary>Connects, serves, and reconnects until <paramref name="stopping"/> fires.</summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        var delay = _options.ReconnectMinDelay;
        while (!stopping.IsCancellationRequested)
        {
            var socket = new Socket(EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                using (var cts = CancellationTokenSource.CreateLinkedTokenSource(stopping))
                {
                    cts.CancelAfter(_options.ConnectTimeout);
                    await socket.ConnectAsync(EndPoint, cts.Token).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                socket.Dispose();
                if (stopping.IsCancellationRequested)
                {
                    return;
                }

                var wait = Jitter(delay);
                Tier1Log.Tier2ConnectFailed(_logger, EndPoint, ex is SocketException se ? se.SocketErrorCode.ToString() : "timed out", (long)wait.TotalMilliseconds);
                await Delay(wait, stopping).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.ReconnectMaxDelay.Ticks));
                continue;
            }

            delay = _options.ReconnectMinDelay;
            var reason = await ServeAsync(socket, stopping).ConfigureAwait(false);
            if (!stopping.IsCancellationRequested)
            {
                Tier1Log.Tier2Down(_logger, EndPoint, reason);
                await Delay(Jitter(delay), stopping).ConfigureAwait(false);
            }
        }
    }

    private async Task<string> ServeAsync(Socket socket, CancellationToken stopping)
    {
        var outbox = new FrameOutbox(socket, 64 * 1024, static o => o.Close());
        using var receiver = new SocketReceiver(socket, _options.Limits.MaxPayload, releaseWhenIdle: false);
        _socket = socket;
        Attach(outbox);
        Tier1Log.Tier2Up(_logger, EndPoint);
        var reason = "closed by peer";
        using var registration = stopping.Register(static s => ((Socket)s!).Dispose(), socket);
        try
        {
            while (await receiver.ReceiveAsync().ConfigureAwait(false))
            {
                while (receiver.TryReadFrame(out var header, out var payload))
                {
                    switch (header.Type)
                    {
                        case FrameType.Redirect or FrameType.Reject:
                            _dispatcher.OnAnswer(this, header.RequestId, header.Type, payload, _batch);
                            break;
                        case FrameType.Pong:
                            Volatile.Write(ref _lastPong, _time.GetTimestamp());
                            Volatile.Write(ref _failures, 0);
                            break;
                        case FrameType.Ping:
                            if (outbox.TryWrite(FrameType.Pong, header.RequestId, payload, out var flush) && flush)
                            {
                                _batch.Add(outbox);
                            }

                            break;
                        default:
                            Tier1Log.Tier2ProtocolError(_logger, EndPoint, $"unexpected frame type {header.Type}");
                            break;
                    }
                }

                _batch.FlushAll();
            }
        }
        catch (VipProtocolException ex)
        {
            Tier1Log.Tier2ProtocolError(_logger, EndPoint, ex.Message);
            reason = "protocol error: " + ex.Message;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            reason = ex is SocketException se ? se.SocketErrorCode.ToString() : "closed";
        }
        finally
        {
            _outbox = null;
            _socket = null;
            _batch.FlushAll();
            outbox.Close();
            socket.Dispose();
            outbox.Dispose();
            _dispatcher.OnLinkDown(this, _batch);
        }

        return reason;
    }

    /// <summary>Health tick: sends a PING and takes the link out of rotation when PONGs stopped coming.</summary>
    public void Tick(FlushBatch batch)
    {
        var outbox = _outbox;
        if (outbox is null)
        {
            return;
        }

        var age = _time.GetElapsedTime(Volatile.Read(ref _lastPong));
        _stale = age > _options.PingTimeout;
        var outNow = _stale || Volatile.Read(ref _failures) >= _options.FailureThreshold;
        if (outNow != _outOfRotation)
        {
            _outOfRotation = outNow;
            if (outNow)
            {
                Tier1Log.Tier2Suspect(_logger, EndPoint, _stale ? $"no PONG for {(long)age.TotalMilliseconds} ms" : $"{_options.FailureThreshold} timeouts in a row");
            }
            else
            {
                Tier1Log.Tier2Recovered(_logger, EndPoint);
            }
        }

        var id = ((ulong)++_pingSeq << 32) | PingIndex;
        if (outbox.TryWrite(FrameType.Ping, id, default, out var flush) && flush)
        {
            batch.Add(outbox);
        }
    }

    /// <summary>Makes <paramref name="outbox"/> the link's send side and puts the link in rotation (benchmarks attach a socketless one).</summary>
    internal void Attach(FrameOutbox outbox)
    {
        Volatile.Write(ref _failures, 0);
        Volatile.Write(ref _lastPong, _time.GetTimestamp());
        _stale = false;
        _outOfRotation = false;
        _outbox = outbox;
    }

    /// <summary>Closes the current connection (stop, or a test simulating a failure).</summary>
    public void Disconnect() => _socket?.Dispose();

    private TimeSpan Jitter(TimeSpan delay) => TimeSpan.FromTicks((long)(delay.Ticks * (0.5 + Random.Shared.NextDouble())));

    private async Task Delay(TimeSpan delay, CancellationToken stopping)
    {
        try
        {
            await Task.Delay(delay, _time, stopping).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }
}
