using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Vip.Forwarding.Epoll;
using Vip.Protocol;

namespace Vip.Forwarding;

/// <summary>
/// The TCP side of the VIP box: accepts on each listen address, admits under the connection limits, connects to the
/// next backend (falling through to the next on failure), and relays. Also closes idle connections and drains on stop.
/// </summary>
internal sealed class TcpForwarder
{
    private readonly IReadOnlyList<IPEndPoint> _listen;
    private readonly BackendPool _pool;
    private readonly Func<ForwarderOptions> _options;
    private readonly Func<RelaySettings> _relaySettings;
    private readonly HealthChecker _health;
    private readonly ForwardingMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ConnectionLimiter _limiter = new();
    private readonly ConcurrentDictionary<IRelay, byte> _relays = new();
    private readonly List<Socket> _listeners = [];
    private readonly List<Task> _acceptLoops = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly LogRateLimiter _limitLog;
    private readonly LogRateLimiter _noBackendLog;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private EventLoopGroup? _loops;
    private ITimer? _idleTimer;
    private volatile bool _draining;
    private int _active;

    public TcpForwarder(IReadOnlyList<IPEndPoint> listen, BackendPool pool, Func<ForwarderOptions> options, Func<RelaySettings> relaySettings,
        HealthChecker health, ForwardingMetrics metrics, ILogger logger, TimeProvider time)
    {
        _listen = listen;
        _pool = pool;
        _options = options;
        _relaySettings = relaySettings;
        _health = health;
        _metrics = metrics;
        _logger = logger;
        _time = time;
        _limitLog = new LogRateLimiter(time, TimeSpan.FromSeconds(10));
        _noBackendLog = new LogRateLimiter(time, TimeSpan.FromSeconds(10));
    }

    /// <summary>The bound addresses (with the real ports when port 0 was configured).</summary>
    public IReadOnlyList<IPEndPoint> EndPoints { get; private set; } = [];

    /// <summary>Connections admitted and not yet finished (connecting or relaying).</summary>
    public int ActiveConnections => Volatile.Read(ref _active);

    /// <summary>Binds every listen address (throwing <see cref="SocketException"/> when one is in use) and starts accepting.</summary>
    public void Start()
    {
        var bound = new List<IPEndPoint>();
        try
        {
            foreach (var ep in _listen)
            {
                var socket = new Socket(ep.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                _listeners.Add(socket);
                if (ep.AddressFamily == AddressFamily.InterNetworkV6 && ep.Address.Equals(IPAddress.IPv6Any))
                {
                    socket.DualMode = true;
                }

                socket.Bind(ep);
                socket.Listen(_options().ListenBacklog);
                bound.Add((IPEndPoint)socket.LocalEndPoint!);
            }
        }
        catch
        {
            foreach (var s in _listeners)
            {
                s.Dispose();
            }

            _listeners.Clear();
            throw;
        }

        EndPoints = bound;
        var options = _options();
        if (LinuxSockets.UsesEpoll(options.Transport))
        {
            var threads = options.RelayThreads > 0 ? options.RelayThreads : Math.Min(Environment.ProcessorCount, 16);
            _loops = new EventLoopGroup(threads, _logger);
            ForwardingLog.RelayTransportChosen(_logger, "epoll", threads);
        }
        else
        {
            ForwardingLog.RelayTransportChosen(_logger, "sockets", 0);
        }

        for (var i = 0; i < _listeners.Count; i++)
        {
            ForwardingLog.Listening(_logger, bound[i], "tcp");
            _acceptLoops.Add(AcceptLoopAsync(_listeners[i], bound[i]));
        }

        var period = TimeSpan.FromTicks(Math.Clamp(_options().IdleTimeout.Ticks / 4, TimeSpan.TicksPerMillisecond * 50, TimeSpan.TicksPerSecond));
        _idleTimer = _time.CreateTimer(static s => ((TcpForwarder)s!).CloseIdle(), this, period, period);
    }

    private async Task AcceptLoopAsync(Socket listener, IPEndPoint endPoint)
    {
        while (true)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex) when (_draining || ex.SocketErrorCode is SocketError.OperationAborted or SocketError.Interrupted)
            {
                return;
            }
            catch (SocketException ex)
            {
                // Out of file descriptors and the like: say so, breathe, go on.
                ForwardingLog.AcceptFailed(_logger, endPoint, ex.SocketErrorCode);
                await Task.Delay(TimeSpan.FromMilliseconds(50), _time).ConfigureAwait(false);
                continue;
            }

            Admit(client);
        }
    }

    private void Admit(Socket client)
    {
        _metrics.Accepted();
        IPEndPoint remote;
        try
        {
            remote = (IPEndPoint)client.RemoteEndPoint!;
        }
        catch (SocketException)
        {
            client.Dispose(); // reset before we looked at it
            return;
        }

        if (_draining)
        {
            _metrics.Refused("draining");
            Reset(client);
            return;
        }

        var options = _options();
        var source = WireEndpoint.From(remote);
        var verdict = _limiter.TryAcquire(source, options.MaxConnections, options.MaxConnectionsPerSource);
        if (verdict != LimitVerdict.Admitted)
        {
            var total = verdict == LimitVerdict.TotalLimit;
            _metrics.Refused(total ? "limit" : "source_limit");
            if (_limitLog.ShouldLog(out var count))
            {
                ForwardingLog.LimitReached(_logger, total ? "MaxConnections" : "MaxConnectionsPerSource",
                    total ? options.MaxConnections : options.MaxConnectionsPerSource, count);
            }

            Reset(client);
            return;
        }

        client.NoDelay = true;
        Interlocked.Increment(ref _active);
        _metrics.ActiveChanged(1);
        _ = HandleAsync(client, remote, source, options);
    }

    private async Task HandleAsync(Socket client, IPEndPoint remote, WireEndpoint source, ForwarderOptions options)
    {
        IRelay? relay = null;
        Backend? backend = null;
        Socket? upstream = null;
        EventLoop? loop = null;
        try
        {
            List<Backend>? tried = null;
            for (var attempt = 0; attempt < options.MaxConnectAttempts && upstream is null; attempt++)
            {
                backend = _pool.Select(tried);
                if (backend is null)
                {
                    break;
                }

                (upstream, loop) = await ConnectAsync(backend, options.ConnectTimeout).ConfigureAwait(false);
                if (upstream is null)
                {
                    (tried ??= []).Add(backend);
                    backend = null;
                }
            }

            if (upstream is null || backend is null)
            {
                _metrics.Refused(_draining ? "draining" : "no_backend");
                if (!_draining && _noBackendLog.ShouldLog(out var count))
                {
                    ForwardingLog.NoBackend(_logger, remote, Math.Max(0, count - 1));
                }

                Reset(client);
                return;
            }

            relay = loop is null
                ? new TcpRelay(client, remote, upstream, backend, _relaySettings(), _metrics, _time)
                : new EpollRelay(loop, client, remote, upstream, backend, _relaySettings(), _metrics, _time);
            backend.ConnectionStarted();
            if (backend.ProxyProtocol)
            {
                relay.WriteProxyHeader(ProxyHeader.Create(ProxyTransport.Stream, remote, (IPEndPoint)client.LocalEndPoint!));
            }

            _relays.TryAdd(relay, 0);
            if (_stopping.IsCancellationRequested)
            {
                relay.Abort(SocketError.Shutdown);
            }

            await relay.RunAsync().ConfigureAwait(false);
            if (relay.EndReason != SocketError.Success)
            {
                ForwardingLog.ConnectionReset(_logger, remote, backend.Address, relay.EndReason);
            }
        }
        catch (Exception ex)
        {
            ForwardingLog.ConnectionFailed(_logger, ex, remote, backend?.Address ?? "(none)");
            relay?.Abort(SocketError.SocketError);
            upstream?.Dispose();
            client.Dispose();
        }
        finally
        {
            if (relay is not null)
            {
                _relays.TryRemove(relay, out _);
                relay.Target.ConnectionEnded();
            }

            _limiter.Release(source);
            _metrics.ActiveChanged(-1);
            if (Interlocked.Decrement(ref _active) == 0 && _draining)
            {
                _drained.TrySetResult();
            }
        }
    }

    private async Task<(Socket? Socket, EventLoop? Loop)> ConnectAsync(Backend backend, TimeSpan timeout)
    {
        var socket = new Socket(backend.EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var deadline = new CancellationTokenSource(timeout, _time);
        using var registration = _stopping.Token.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), deadline);
        var loop = _loops?.Next();
        SocketError error;
        try
        {
            if (loop is null)
            {
                await socket.ConnectAsync(backend.EndPoint, deadline.Token).ConfigureAwait(false);
                error = SocketError.Success;
            }
            else
            {
                error = await EpollConnect.ConnectAsync(loop, socket, backend.SocketAddress, deadline.Token).ConfigureAwait(false);
            }
        }
        catch (SocketException ex)
        {
            error = ex.SocketErrorCode;
        }
        catch (OperationCanceledException)
        {
            error = SocketError.OperationAborted;
        }

        if (error == SocketError.Success)
        {
            _health.ConnectSucceeded(backend);
            return (socket, loop);
        }

        socket.Dispose();
        if (error != SocketError.OperationAborted)
        {
            _health.ConnectFailed(backend, error);
        }
        else if (!_stopping.IsCancellationRequested)
        {
            _health.ConnectFailed(backend, SocketError.TimedOut);
        }

        return (null, null);
    }

    private void CloseIdle()
    {
        var idle = _options().IdleTimeout;
        var now = _time.GetTimestamp();
        foreach (var relay in _relays.Keys)
        {
            var quiet = _time.GetElapsedTime(relay.LastActivity, now);
            if (quiet >= idle)
            {
                ForwardingLog.IdleTimeout(_logger, relay.ClientEndPoint, relay.Target.Address, quiet);
                relay.Abort(SocketError.TimedOut);
            }
        }
    }

    /// <summary>
    /// Stops accepting, lets live connections finish within <paramref name="drainTimeout"/> (or until
    /// <paramref name="cancellationToken"/> fires), then resets the rest.
    /// </summary>
    public async Task StopAsync(TimeSpan drainTimeout, CancellationToken cancellationToken)
    {
        _draining = true;
        foreach (var listener in _listeners)
        {
            listener.Dispose();
        }

        await Task.WhenAll(_acceptLoops).ConfigureAwait(false);
        var active = ActiveConnections;
        if (active == 0)
        {
            _drained.TrySetResult();
        }
        else
        {
            ForwardingLog.Draining(_logger, active, drainTimeout);
        }

        try
        {
            await _drained.Task.WaitAsync(drainTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            ForwardingLog.DrainCut(_logger, ActiveConnections);
            await _stopping.CancelAsync().ConfigureAwait(false);
            foreach (var relay in _relays.Keys)
            {
                relay.Abort(SocketError.Shutdown);
            }

            // Aborted relays end at once; the bound only guards against a bug hanging the host's stop.
            try
            {
                await _drained.Task.WaitAsync(TimeSpan.FromSeconds(5), _time, CancellationToken.None).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
            }
        }

        _stopping.Cancel();
        if (_idleTimer is not null)
        {
            await _idleTimer.DisposeAsync().ConfigureAwait(false);
        }

        // Every relay and connect has ended (or the 5 s bound above passed): the loops can go.
        _loops?.Dispose();
    }

    /// <summary>Closes <paramref name="socket"/> with linger 0, so the peer gets a RST (the reset that happened on the other side, or a refusal).</summary>
    internal static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }

        socket.Dispose();
    }
}
