using System.Net;
using System.Net.Sockets;

namespace Vip.Forwarding.Epoll;

/// <summary>
/// The UDP listener on an <see cref="EventLoop"/>: when epoll reports datagrams, receives them one by one with their
/// sender's address straight into a reused <see cref="SocketAddress"/> (the native sockaddr), finds or opens the
/// sender's session, and sends the datagram on at once. No allocation per datagram, one receive and one send each.
/// </summary>
internal sealed class EpollUdpListener : IEventHandler
{
    // Datagrams taken per readiness event before the loop serves the sessions' replies (level-triggered: the rest
    // is reported again).
    private const int MaxPerEvent = 64;

    private readonly UdpForwarder _owner;
    private readonly Socket _socket;
    private readonly int _fd;
    private readonly EventLoop _loop;
    private readonly SocketAddress _from;
    private int _slot = -1;

    public EpollUdpListener(UdpForwarder owner, Socket socket, EventLoop loop)
    {
        _owner = owner;
        _socket = socket;
        _fd = (int)socket.SafeHandle.DangerousGetHandle();
        _loop = loop;
        _from = new SocketAddress(socket.AddressFamily);
    }

    public void Start() => _loop.Post(this, 0);

    public void OnCommand(int command)
    {
        if (_slot >= 0)
        {
            return;
        }

        _slot = _loop.Attach(this);
        var errno = _loop.Control(LinuxSockets.EPOLL_CTL_ADD, _fd, LinuxSockets.EPOLLIN, _loop.Token(_slot, 0));
        if (errno != 0)
        {
            ForwardingLog.UdpReceiveFailed(_owner.Logger, (EndPoint)_socket.LocalEndPoint!, LinuxSockets.ToSocketError(errno));
        }
    }

    public void OnEvents(int side, uint events)
    {
        var buffer = _owner.ListenerBuffer;
        var payload = buffer.AsSpan(UdpForwarder.PayloadOffset, UdpForwarder.MaxDatagram);
        for (var i = 0; i < MaxPerEvent; i++)
        {
            _from.Size = _from.Buffer.Length;
            var n = LinuxSockets.ReceiveFrom(_fd, payload, _from.Buffer.Span, out var addressLength);
            if (n < 0)
            {
                var errno = (int)-n;
                if (errno == LinuxSockets.EAGAIN)
                {
                    return;
                }

                if (errno != LinuxSockets.EINTR)
                {
                    ForwardingLog.UdpReceiveFailed(_owner.Logger, (EndPoint)_socket.LocalEndPoint!, LinuxSockets.ToSocketError(errno));
                    return;
                }

                continue;
            }

            _from.Size = addressLength;
            _owner.GetOrOpen(_from, _socket)?.Forward(buffer, UdpForwarder.PayloadOffset, (int)n);
        }
    }

    public void OnFailure(Exception exception)
    {
        if (exception is ObjectDisposedException)
        {
            return; // the loop is stopping with the forwarder: not a receive failure
        }

        ForwardingLog.UdpReceiveFailed(_owner.Logger, (EndPoint)_socket.LocalEndPoint!, SocketError.SocketError);
    }
}

/// <summary>
/// One UDP session's upstream socket on the forwarder's <see cref="EventLoop"/>: replies are received into the
/// loop's shared reply buffer and sent back to the client from the VIP socket in the same call.
/// </summary>
internal sealed class EpollUdpSession : IEventHandler
{
    private const int StartCommand = 0;
    private const int CloseCommand = 1;
    private const int MaxPerEvent = 64;

    private readonly UdpSession _session;
    private readonly UdpForwarder _owner;
    private readonly Socket _upstream;
    private readonly int _fd;
    private readonly int _listenerFd;
    private readonly EventLoop _loop;
    private int _slot = -1;
    private bool _closed;

    public EpollUdpSession(UdpSession session, UdpForwarder owner, Socket upstream, Socket listener, EventLoop loop)
    {
        _session = session;
        _owner = owner;
        _upstream = upstream;
        _fd = (int)upstream.SafeHandle.DangerousGetHandle();
        _listenerFd = (int)listener.SafeHandle.DangerousGetHandle();
        _loop = loop;
    }

    /// <summary>Registers the upstream socket (at once when called on the loop, as sessions are opened there).</summary>
    public void Start()
    {
        if (_loop.IsOnLoop)
        {
            OnCommand(StartCommand);
        }
        else
        {
            _loop.Post(this, StartCommand);
        }
    }

    /// <summary>Sends one datagram to the backend (loop thread); returns bytes sent or -errno.</summary>
    public nint Send(ReadOnlySpan<byte> datagram) => _closed ? -LinuxSockets.EAGAIN : LinuxSockets.Send(_fd, datagram);

    /// <summary>Closes the upstream socket on the loop thread (at once when already there).</summary>
    public void Close()
    {
        if (_loop.IsOnLoop)
        {
            CloseNow();
        }
        else
        {
            _loop.Post(this, CloseCommand);
        }
    }

    public void OnCommand(int command)
    {
        if (command == CloseCommand)
        {
            CloseNow();
            return;
        }

        if (_closed || _slot >= 0)
        {
            return;
        }

        _slot = _loop.Attach(this);
        var errno = _loop.Control(LinuxSockets.EPOLL_CTL_ADD, _fd, LinuxSockets.EPOLLIN, _loop.Token(_slot, 0));
        if (errno != 0)
        {
            _owner.Close(_session, "socket error");
        }
    }

    public void OnEvents(int side, uint events)
    {
        var buffer = _owner.ReplyBuffer;
        var client = _session.ClientAddress;
        for (var i = 0; i < MaxPerEvent && !_closed; i++)
        {
            var n = LinuxSockets.Receive(_fd, buffer);
            if (n < 0)
            {
                var errno = (int)-n;
                if (errno == LinuxSockets.EAGAIN)
                {
                    return;
                }

                if (errno == LinuxSockets.EINTR)
                {
                    continue;
                }

                if (errno == LinuxSockets.ECONNREFUSED)
                {
                    _owner.BackendRefused(_session); // ICMP port unreachable from the backend
                }
                else
                {
                    _owner.Close(_session, "socket error");
                }

                return;
            }

            _session.Touch();
            var sent = LinuxSockets.SendTo(_listenerFd, buffer.AsSpan(0, (int)n), client.Buffer.Span[..client.Size]);
            if (sent >= 0)
            {
                _owner.Metrics.UdpDatagram(toBackend: false);
            }
            else
            {
                _owner.Drop("send_error");
            }
        }
    }

    public void OnFailure(Exception exception)
    {
        if (!_closed)
        {
            _owner.Close(_session, "socket error");
            CloseNow(); // the loop is stopping or the session failed: the socket goes either way
        }
    }

    private void CloseNow()
    {
        if (_closed)
        {
            return;
        }

        _closed = true;
        if (_slot >= 0)
        {
            _loop.Detach(_slot, _fd);
        }

        _upstream.Dispose();
    }
}
