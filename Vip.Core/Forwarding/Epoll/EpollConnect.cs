using System.Net;
using System.Net.Sockets;

namespace Vip.Forwarding.Epoll;

/// <summary>
/// A non-blocking connect completed on an <see cref="EventLoop"/>, so the socket is never registered with .NET's
/// own socket engine (which would then wake for every byte the relay moves on it).
/// </summary>
internal sealed class EpollConnect : IEventHandler
{
    private const int Register = 0;
    private const int Cancel = 1;

    private readonly EventLoop _loop;
    private readonly Socket _socket;
    private readonly int _fd;
    // Continuations run inline, on the loop thread: the forwarder's next step (build the relay and start it on this
    // same loop, or try the next backend) is short and never blocks, and it saves a thread-pool hop and a loop
    // wake-up per connection.
    private readonly TaskCompletionSource<SocketError> _done = new();
    private int _slot = -1;
    private bool _finished;

    private EpollConnect(EventLoop loop, Socket socket)
    {
        _loop = loop;
        _socket = socket;
        _fd = (int)socket.SafeHandle.DangerousGetHandle();
    }

    /// <summary>
    /// Connects <paramref name="socket"/> (made non-blocking here) to <paramref name="endPoint"/>. Returns
    /// <see cref="SocketError.Success"/>, the connect's error, or <see cref="SocketError.OperationAborted"/> when
    /// <paramref name="cancellationToken"/> fired first. The caller owns (and disposes) the socket throughout.
    /// </summary>
    public static async Task<SocketError> ConnectAsync(EventLoop loop, Socket socket, SocketAddress endPoint, CancellationToken cancellationToken)
    {
        // connect(2) called directly: Socket.Connect on a non-blocking socket reports "in progress" as an exception,
        // whose cost (about 10 µs) showed up in every new connection's profile.
        socket.Blocking = false;
        var errno = LinuxSockets.Connect((int)socket.SafeHandle.DangerousGetHandle(), endPoint.Buffer.Span[..endPoint.Size]);
        if (errno == 0)
        {
            return SocketError.Success;
        }

        if (errno != LinuxSockets.EINPROGRESS && errno != LinuxSockets.EAGAIN)
        {
            return LinuxSockets.ToSocketError(errno);
        }

        var operation = new EpollConnect(loop, socket);
        loop.Post(operation, Register);
        using (cancellationToken.UnsafeRegister(static s => ((EpollConnect)s!).RequestCancel(), operation))
        {
            return await operation._done.Task.ConfigureAwait(false);
        }
    }

    private void RequestCancel() => _loop.Post(this, Cancel);

    public void OnCommand(int command)
    {
        if (_finished)
        {
            return;
        }

        if (command == Cancel)
        {
            Finish(SocketError.OperationAborted);
            return;
        }

        _slot = _loop.Attach(this);
        var errno = _loop.Control(LinuxSockets.EPOLL_CTL_ADD, _fd, LinuxSockets.EPOLLOUT, _loop.Token(_slot, 0));
        if (errno != 0)
        {
            Finish(LinuxSockets.ToSocketError(errno));
        }
    }

    public void OnEvents(int side, uint events)
    {
        var error = (SocketError)(int)_socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error)!;
        Finish(error == SocketError.Success && (events & LinuxSockets.EPOLLHUP) != 0 ? SocketError.ConnectionRefused : error);
    }

    public void OnFailure(Exception exception) => Finish(SocketError.SocketError);

    private void Finish(SocketError result)
    {
        if (_finished)
        {
            return;
        }

        _finished = true;
        if (_slot >= 0)
        {
            _loop.Detach(_slot, _fd);
        }

        _done.TrySetResult(result);
    }
}
