using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Vip.Forwarding.Epoll;
using Vip.Protocol;

namespace Vip.Forwarding;

/// <summary>
/// The UDP side of the VIP box. Each new client address opens a session: the next healthy backend in round-robin
/// order and an upstream socket of its own, so replies can be told apart and go back to the right client from the
/// VIP address. Sessions close after an idle timeout; their number is capped. Datagrams are relayed without
/// allocating: one receive buffer for the listener, and for replies a pooled buffer rented only once a reply is there.
/// </summary>
internal sealed class UdpForwarder : IAsyncDisposable
{
    internal const int MaxDatagram = 65535;
    private const int Reserve = ProxyProtocol.MaxWrittenLength; // room for a PROXY header in front of the payload

    private readonly IPEndPoint _listen;
    private readonly BackendPool _pool;
    private readonly bool _reportHealth;
    private readonly Func<ForwarderOptions> _options;
    private readonly HealthChecker _health;
    private readonly ForwardingMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly object _gate = new();
    private readonly Dictionary<SocketAddress, UdpSession> _sessions = [];
    private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>(Reserve + MaxDatagram);
    private readonly LogRateLimiter _dropLog;
    private Socket? _socket;
    private Task _loop = Task.CompletedTask;
    private EventLoop? _eventLoop;
    private EpollUdpListener? _epollListener;
    private ITimer? _sweeper;
    private volatile bool _stopped;

    public UdpForwarder(IPEndPoint listen, BackendPool pool, bool reportHealth, Func<ForwarderOptions> options, HealthChecker health,
        ForwardingMetrics metrics, ILogger logger, TimeProvider time)
    {
        _listen = listen;
        _pool = pool;
        _reportHealth = reportHealth;
        _options = options;
        _health = health;
        _metrics = metrics;
        _logger = logger;
        _time = time;
        _dropLog = new LogRateLimiter(time, TimeSpan.FromSeconds(10));
    }

    public IPEndPoint? EndPoint { get; private set; }

    public int ActiveSessions
    {
        get
        {
            lock (_gate)
            {
                return _sessions.Count;
            }
        }
    }

    /// <summary>The listener's receive buffer as granted by the kernel (usable bytes, at most the option).</summary>
    internal int ReceiveBufferBytes { get; private set; }

    internal ILogger Logger => _logger;

    internal ForwardingMetrics Metrics => _metrics;

    internal TimeProvider Time => _time;

    /// <summary>The loop carrying the UDP side with the epoll transport; null with the sockets transport.</summary>
    internal EventLoop? EventLoop => _eventLoop;

    /// <summary>Scratch for backend replies on the epoll loop (one thread uses it).</summary>
    internal byte[] ReplyBuffer { get; } = GC.AllocateUninitializedArray<byte>(MaxDatagram);

    /// <summary>The listener's receive buffer, with <see cref="Reserve"/> bytes free in front of the payload.</summary>
    internal byte[] ListenerBuffer => _buffer;

    internal const int PayloadOffset = Reserve;


    /// <summary>Binds (throwing <see cref="SocketException"/> when the address is in use) and starts relaying.</summary>
    public void Start()
    {
        var socket = new Socket(_listen.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (_listen.AddressFamily == AddressFamily.InterNetworkV6 && _listen.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            socket.Bind(_listen);
            ReceiveBufferBytes = SetReceiveBuffer(socket, _options().Udp.ReceiveBufferSize);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        _socket = socket;
        EndPoint = (IPEndPoint)socket.LocalEndPoint!;
        ForwardingLog.Listening(_logger, EndPoint, "udp");
        var requested = _options().Udp.ReceiveBufferSize;
        if (ReceiveBufferBytes < requested)
        {
            ForwardingLog.UdpReceiveBufferCapped(_logger, EndPoint, ReceiveBufferBytes, requested);
        }

        if (LinuxSockets.UsesEpoll(_options().Transport))
        {
            // One event-loop thread carries the whole UDP side: the listener and every session's upstream socket.
            _eventLoop = new EventLoop("vip-udp", _logger);
            _epollListener = new EpollUdpListener(this, socket, _eventLoop);
            _epollListener.Start();
        }
        else
        {
            _loop = ReceiveLoopAsync(socket);
        }

        var period = TimeSpan.FromTicks(Math.Clamp(_options().Udp.SessionIdleTimeout.Ticks / 4, TimeSpan.TicksPerMillisecond * 50, TimeSpan.TicksPerSecond));
        _sweeper = _time.CreateTimer(static s => ((UdpForwarder)s!).CloseIdle(), this, period, period);
    }

    /// <summary>
    /// Asks for an SO_RCVBUF of <paramref name="bytes"/> and returns what the kernel granted. Linux doubles the
    /// request for its bookkeeping and reports the doubled figure; the usable half is returned.
    /// </summary>
    internal static int SetReceiveBuffer(Socket socket, int bytes)
    {
        socket.ReceiveBufferSize = bytes;
        var granted = socket.ReceiveBufferSize;
        return OperatingSystem.IsLinux() ? Math.Min(bytes, granted / 2) : Math.Min(bytes, granted);
    }

    private async Task ReceiveLoopAsync(Socket socket)
    {
        var from = new SocketAddress(socket.AddressFamily);
        var payload = _buffer.AsMemory(Reserve, MaxDatagram);
        while (!_stopped)
        {
            int n;
            try
            {
                n = await socket.ReceiveFromAsync(payload, SocketFlags.None, from).ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException) when (_stopped)
            {
                return;
            }
            catch (SocketException ex)
            {
                ForwardingLog.UdpReceiveFailed(_logger, _listen, ex.SocketErrorCode);
                continue;
            }

            var session = GetOrOpen(from, socket);
            if (session is not null)
            {
                await session.ForwardAsync(_buffer, Reserve, n).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Finds (or opens) the session of a datagram's sender; called by the receive path of either transport.</summary>
    internal UdpSession? GetOrOpen(SocketAddress from, Socket listener)
    {
        lock (_gate)
        {
            if (_sessions.TryGetValue(from, out var existing))
            {
                return existing;
            }

            if (_sessions.Count >= _options().Udp.MaxSessions)
            {
                Drop("session_limit");
                return null;
            }
        }

        var backend = _pool.Select();
        if (backend is null)
        {
            Drop("no_backend");
            return null;
        }

        var address = new SocketAddress(from.Family, from.Size);
        from.Buffer.Span[..from.Size].CopyTo(address.Buffer.Span);
        var client = (IPEndPoint)_listen.Create(address);
        var upstream = new Socket(backend.EndPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            SetReceiveBuffer(upstream, _options().Udp.SessionReceiveBufferSize);
            upstream.Connect(backend.EndPoint); // local only: fixes the peer, so replies come from the backend alone
        }
        catch (SocketException ex)
        {
            upstream.Dispose();
            Drop("no_backend");
            if (_reportHealth)
            {
                _health.ConnectFailed(backend, ex.SocketErrorCode);
            }

            return null;
        }

        byte[]? proxyHeader = null;
        if (backend.ProxyProtocol)
        {
            var header = ProxyHeader.Create(ProxyTransport.Datagram, client, EndPoint!);
            proxyHeader = new byte[header.EncodedLength];
            ProxyProtocolWriter.Write(proxyHeader, header);
        }

        var session = new UdpSession(this, address, client, backend, upstream, proxyHeader);
        lock (_gate)
        {
            _sessions.Add(address, session);
        }

        _metrics.UdpSessionOpened();
        ForwardingLog.UdpSessionOpened(_logger, client, backend.Address);
        session.Start(listener);
        return session;
    }

    internal void Drop(string reason)
    {
        _metrics.UdpDropped(reason);
        if (_dropLog.ShouldLog(out var count))
        {
            ForwardingLog.UdpDropped(_logger, reason, count);
        }
    }

    internal void BackendRefused(UdpSession session)
    {
        if (_reportHealth)
        {
            _health.ConnectFailed(session.Backend, SocketError.ConnectionRefused);
        }

        Close(session, "backend refused");
    }

    internal void Close(UdpSession session, string reason)
    {
        lock (_gate)
        {
            if (!_sessions.TryGetValue(session.ClientAddress, out var current) || !ReferenceEquals(current, session))
            {
                return;
            }

            _sessions.Remove(session.ClientAddress);
        }

        session.Dispose();
        _metrics.UdpSessionClosed();
        ForwardingLog.UdpSessionClosed(_logger, session.Client, session.Backend.Address, reason);
    }

    private void CloseIdle()
    {
        var idle = _options().Udp.SessionIdleTimeout;
        var now = _time.GetTimestamp();
        List<UdpSession>? expired = null;
        lock (_gate)
        {
            foreach (var s in _sessions.Values)
            {
                if (_time.GetElapsedTime(s.LastActivity, now) >= idle)
                {
                    (expired ??= []).Add(s);
                }
            }
        }

        if (expired is not null)
        {
            foreach (var s in expired)
            {
                Close(s, "idle");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stopped = true;
        if (_sweeper is not null)
        {
            await _sweeper.DisposeAsync().ConfigureAwait(false);
        }

        if (_eventLoop is null)
        {
            _socket?.Dispose();
        }

        await _loop.ConfigureAwait(false);
        UdpSession[] all;
        lock (_gate)
        {
            all = [.. _sessions.Values];
        }

        foreach (var s in all)
        {
            Close(s, "stopping");
        }

        if (_eventLoop is not null)
        {
            // The loop runs the sessions' queued closes before it stops (and the rest are run here once it has).
            _eventLoop.Dispose();
            _socket?.Dispose();
        }
    }
}

/// <summary>One client address of the UDP side, bound to one backend through its own connected socket.</summary>
internal sealed class UdpSession : IDisposable
{
    private readonly UdpForwarder _owner;
    private readonly Socket _upstream;
    private readonly byte[]? _proxyHeader;
    private EpollUdpSession? _epoll;
    private long _lastActivity;

    public UdpSession(UdpForwarder owner, SocketAddress clientAddress, IPEndPoint client, Backend backend, Socket upstream, byte[]? proxyHeader)
    {
        _owner = owner;
        ClientAddress = clientAddress;
        Client = client;
        Backend = backend;
        _upstream = upstream;
        _proxyHeader = proxyHeader;
        _lastActivity = owner.Time.GetTimestamp();
    }

    public SocketAddress ClientAddress { get; }

    public IPEndPoint Client { get; }

    public Backend Backend { get; }

    public long LastActivity => Volatile.Read(ref _lastActivity);

    public void Start(Socket listener)
    {
        if (_owner.EventLoop is { } loop)
        {
            _epoll = new EpollUdpSession(this, _owner, _upstream, listener, loop);
            _epoll.Start();
        }
        else
        {
            _ = ReplyLoopAsync(listener);
        }
    }

    /// <summary>Epoll transport: sends the datagram at once, on the loop thread (a full socket buffer drops it, as the kernel would).</summary>
    public void Forward(byte[] buffer, int offset, int length)
    {
        var sent = _epoll!.Send(Outgoing(buffer, offset, length).Span);
        if (sent >= 0)
        {
            _owner.Metrics.UdpDatagram(toBackend: true);
            return;
        }

        _owner.Drop("send_error");
        if (-sent == LinuxSockets.ECONNREFUSED)
        {
            _owner.BackendRefused(this);
        }
    }

    internal void Touch() => Volatile.Write(ref _lastActivity, _owner.Time.GetTimestamp());

    /// <summary>
    /// Marks activity and returns the datagram to send for the payload at <paramref name="buffer"/>[<paramref name="offset"/>..]:
    /// with this session's PROXY header written into the room kept in front of it, if the backend wants one.
    /// </summary>
    private Memory<byte> Outgoing(byte[] buffer, int offset, int length)
    {
        Touch();
        var start = offset;
        if (_proxyHeader is not null)
        {
            start -= _proxyHeader.Length;
            _proxyHeader.CopyTo(buffer, start);
        }

        return buffer.AsMemory(start, offset - start + length);
    }

    /// <summary>Sends the datagram at <paramref name="buffer"/>[<paramref name="offset"/>..] to the backend, behind the PROXY header if any.</summary>
    public async ValueTask ForwardAsync(byte[] buffer, int offset, int length)
    {
        var datagram = Outgoing(buffer, offset, length);
        try
        {
            await _upstream.SendAsync(datagram, SocketFlags.None).ConfigureAwait(false);
            _owner.Metrics.UdpDatagram(toBackend: true);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
        {
            _owner.Drop("send_error");
            _owner.BackendRefused(this);
        }
        catch (SocketException)
        {
            _owner.Drop("send_error");
        }
        catch (ObjectDisposedException)
        {
            _owner.Drop("send_error"); // the session closed under us
        }
    }

    private async Task ReplyLoopAsync(Socket listener)
    {
        try
        {
            while (true)
            {
                if (_upstream.Available == 0)
                {
                    // Wait for a reply without holding a buffer: a zero-byte peek leaves the datagram queued.
                    await _upstream.ReceiveAsync(Memory<byte>.Empty, SocketFlags.Peek).ConfigureAwait(false);
                }

                var buffer = ArrayPool<byte>.Shared.Rent(UdpForwarder.MaxDatagram);
                try
                {
                    var n = await _upstream.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
                    Touch();
                    await listener.SendToAsync(buffer.AsMemory(0, n), SocketFlags.None, ClientAddress).ConfigureAwait(false);
                    _owner.Metrics.UdpDatagram(toBackend: false);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
        {
            _owner.BackendRefused(this); // ICMP port unreachable from the backend
        }
        catch (SocketException)
        {
            _owner.Close(this, "socket error");
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public void Dispose()
    {
        if (_epoll is not null)
        {
            _epoll.Close(); // on the loop: the socket is closed there, after any event being handled
        }
        else
        {
            _upstream.Dispose();
        }
    }
}
