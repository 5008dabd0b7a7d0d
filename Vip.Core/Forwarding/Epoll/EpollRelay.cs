using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Vip.Protocol;

namespace Vip.Forwarding.Epoll;

/// <summary>
/// Relays one client connection to one backend on an <see cref="EventLoop"/> thread: each direction is a
/// <see cref="Pipe"/> filled by <c>recv</c> when epoll says the source is readable and drained by <c>send</c> at
/// once, in the same call. One receive and one send per message, no thread hop, no speculative read: a
/// level-triggered loop only reads a socket it was told is readable. Idle connections hold no buffer (the pipe
/// returns its segments once everything read was sent). A direction with <see cref="RelaySettings.MaxBufferedBytes"/>
/// unsent stops reading its source until half of it has gone, so a slow reader slows the writer. A FIN is passed on
/// as a half-close; a reset or error resets both sockets.
/// </summary>
internal sealed class EpollRelay : IRelay, IEventHandler
{
    private const int StartCommand = 0;
    private const int AbortCommand = 1;
    private const int ClientSide = 0;
    private const int BackendSide = 1;

    // Reads in a row on one readiness event while each fills its buffer (a bulk transfer), before the loop
    // serves other connections.
    private const int MaxReadsPerEvent = 8;

    private readonly EventLoop _loop;
    private readonly Socket _client;
    private readonly Socket _backend;
    private readonly int _clientFd;
    private readonly int _backendFd;
    private readonly RelaySettings _settings;
    private readonly ForwardingMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly Direction _up;
    private readonly Direction _down;
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private uint _clientInterest;
    private uint _backendInterest;
    private int _slot = -1;
    private bool _closed;
    private int _abortRequested;
    private SocketError _abortReason;
    private SocketError _endReason;
    private long _lastActivity;

    public EpollRelay(EventLoop loop, Socket client, IPEndPoint clientEndPoint, Socket backend, Backend target,
        RelaySettings settings, ForwardingMetrics metrics, TimeProvider time)
    {
        _loop = loop;
        _client = client;
        _backend = backend;
        _clientFd = (int)client.SafeHandle.DangerousGetHandle();
        _backendFd = (int)backend.SafeHandle.DangerousGetHandle();
        ClientEndPoint = clientEndPoint;
        Target = target;
        _settings = settings;
        _metrics = metrics;
        _time = time;
        _up = new Direction(new Pipe(settings.UnpausedPipeOptions), _clientFd, _backendFd, toBackend: true, settings.MinReadSize);
        _down = new Direction(new Pipe(settings.UnpausedPipeOptions), _backendFd, _clientFd, toBackend: false, settings.MinReadSize);
        _lastActivity = time.GetTimestamp();
    }

    public IPEndPoint ClientEndPoint { get; }

    public Backend Target { get; }

    public long LastActivity => Volatile.Read(ref _lastActivity);

    public SocketError EndReason => _endReason;

    public void WriteProxyHeader(in ProxyHeader header)
    {
        // Before RunAsync: nothing else touches the pipe yet. Sent with the first send towards the backend.
        var writer = _up.Pipe.Writer;
        ProxyProtocolWriter.Write(writer, header);
        var length = writer.UnflushedBytes;
        Commit(_up, 0);
        _up.Buffered += length;
    }

    public Task RunAsync()
    {
        if (_loop.IsOnLoop)
        {
            OnCommand(StartCommand); // the connect completed on this loop and the forwarder went on inline
        }
        else
        {
            _loop.Post(this, StartCommand);
        }

        return _done.Task;
    }

    public void Abort(SocketError reason)
    {
        if (Interlocked.Exchange(ref _abortRequested, 1) != 0)
        {
            return;
        }

        _abortReason = reason;
        _loop.Post(this, AbortCommand);
    }

    public void OnCommand(int command)
    {
        if (_closed)
        {
            return;
        }

        if (command == AbortCommand)
        {
            Close(_abortReason, reset: true);
            return;
        }

        _slot = _loop.Attach(this);
        Write(_up); // a PROXY header waiting in the pipe
        Settle();
    }

    public void OnEvents(int side, uint events)
    {
        if (_closed)
        {
            return;
        }

        var socket = side == ClientSide ? _client : _backend;
        if ((events & LinuxSockets.EPOLLERR) != 0)
        {
            var error = (SocketError)(int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error)!;
            Close(error == SocketError.Success ? SocketError.ConnectionReset : error, reset: true);
            return;
        }

        // The fd of this side is read by one direction and written by the other.
        var reading = side == ClientSide ? _up : _down;
        var writing = side == ClientSide ? _down : _up;
        if ((events & LinuxSockets.EPOLLOUT) != 0 && writing.SendBlocked)
        {
            writing.SendBlocked = false;
            Write(writing);
            if (_closed)
            {
                return;
            }
        }

        if ((events & (LinuxSockets.EPOLLIN | LinuxSockets.EPOLLHUP)) != 0 && reading.CanRead)
        {
            Read(reading);
            if (_closed)
            {
                return;
            }
        }

        Settle();
    }

    public void OnFailure(Exception exception) => Close(SocketError.SocketError, reset: true);

    private void Read(Direction direction)
    {
        var writer = direction.Pipe.Writer;
        for (var i = 0; i < MaxReadsPerEvent; i++)
        {
            var memory = writer.GetMemory(direction.ReadSize);
            var n = LinuxSockets.Receive(direction.FromFd, memory.Span);
            if (n > 0)
            {
                var count = (int)n;
                Commit(direction, count);
                direction.Buffered += count;
                _metrics.AddBytes(direction.ToBackend, count);
                Volatile.Write(ref _lastActivity, _time.GetTimestamp());

                // Read sizes follow the traffic: a full buffer doubles the next read, a short one halves it.
                var full = count == memory.Length;
                if (full)
                {
                    direction.ReadSize = Math.Min(direction.ReadSize * 2, _settings.MaxReadSize);
                }
                else if (count < direction.ReadSize / 4)
                {
                    direction.ReadSize = Math.Max(direction.ReadSize / 2, _settings.MinReadSize);
                }

                Write(direction);
                if (_closed)
                {
                    return;
                }

                if (direction.Buffered >= _settings.MaxBufferedBytes)
                {
                    direction.ReadPaused = true;
                    return;
                }

                if (!full)
                {
                    return; // the socket is most likely drained; epoll says so again if not
                }

                continue;
            }

            Commit(direction, 0);
            if (n == 0)
            {
                direction.ReadEof = true; // FIN: passed on once everything before it was sent
                SendFinIfDone(direction);
                return;
            }

            var errno = (int)-n;
            if (errno == LinuxSockets.EAGAIN)
            {
                return;
            }

            if (errno != LinuxSockets.EINTR)
            {
                Close(LinuxSockets.ToSocketError(errno), reset: true);
                return;
            }
        }
    }

    private void Write(Direction direction)
    {
        var reader = direction.Pipe.Reader;
        while (!direction.SendBlocked && reader.TryRead(out var result))
        {
            var buffer = result.Buffer;
            if (buffer.IsEmpty)
            {
                reader.AdvanceTo(buffer.End);
                break;
            }

            var sent = buffer.IsSingleSegment
                ? LinuxSockets.Send(direction.ToFd, buffer.FirstSpan)
                : SendGathered(direction.ToFd, buffer, out _);
            if (sent < 0)
            {
                reader.AdvanceTo(buffer.Start);
                var errno = (int)-sent;
                if (errno == LinuxSockets.EAGAIN)
                {
                    direction.SendBlocked = true;
                    break;
                }

                if (errno == LinuxSockets.EINTR)
                {
                    continue;
                }

                Close(LinuxSockets.ToSocketError(errno), reset: true);
                return;
            }

            reader.AdvanceTo(buffer.GetPosition(sent));
            direction.Buffered -= sent;
            if (sent < buffer.Length)
            {
                // The kernel took part of it: either its send buffer is full (wait for EPOLLOUT) or a gathered
                // send reached its vector cap (go on). Trying again tells which.
                continue;
            }
        }

        if (direction.ReadPaused && direction.Buffered <= _settings.MaxBufferedBytes / 2)
        {
            direction.ReadPaused = false;
        }

        SendFinIfDone(direction);
    }

    private static unsafe nint SendGathered(int fd, in ReadOnlySequence<byte> buffer, out int vectors)
    {
        var iov = stackalloc LinuxSockets.IoVector[LinuxSockets.MaxIoVectors];
        vectors = 0;
        var handles = ArrayPool<MemoryHandle>.Shared.Rent(LinuxSockets.MaxIoVectors);
        try
        {
            foreach (var segment in buffer)
            {
                if (segment.IsEmpty)
                {
                    continue;
                }

                handles[vectors] = segment.Pin();
                iov[vectors].Base = handles[vectors].Pointer;
                iov[vectors].Length = segment.Length;
                if (++vectors == LinuxSockets.MaxIoVectors)
                {
                    break;
                }
            }

            return LinuxSockets.SendGathered(fd, iov, vectors);
        }
        finally
        {
            for (var i = 0; i < vectors; i++)
            {
                handles[i].Dispose();
            }

            ArrayPool<MemoryHandle>.Shared.Return(handles, clearArray: true);
        }
    }

    private void SendFinIfDone(Direction direction)
    {
        if (direction.ReadEof && !direction.FinSent && direction.Buffered == 0)
        {
            direction.FinSent = true;
            _ = LinuxSockets.ShutdownSend(direction.ToFd); // an error here shows up as a reset on the next event
        }
    }

    /// <summary>After any work: end the relay when both FINs went through, else bring epoll's interest up to date.</summary>
    private void Settle()
    {
        if (_up.FinSent && _down.FinSent)
        {
            Close(SocketError.Success, reset: false);
            return;
        }

        _clientInterest = UpdateInterest(_clientFd, ClientSide, _clientInterest, Interest(_up, _down));
        if (!_closed)
        {
            _backendInterest = UpdateInterest(_backendFd, BackendSide, _backendInterest, Interest(_down, _up));
        }
    }

    private static uint Interest(Direction readFrom, Direction writeTo) =>
        (readFrom.CanRead ? LinuxSockets.EPOLLIN : 0) | (writeTo.SendBlocked ? LinuxSockets.EPOLLOUT : 0);

    private uint UpdateInterest(int fd, int side, uint current, uint desired)
    {
        if (desired == current)
        {
            return current;
        }

        // No interest at all: leave epoll entirely, so a hang-up on a finished fd cannot wake the loop again and again.
        var operation = desired == 0 ? LinuxSockets.EPOLL_CTL_DEL
            : current == 0 ? LinuxSockets.EPOLL_CTL_ADD
            : LinuxSockets.EPOLL_CTL_MOD;
        var errno = _loop.Control(operation, fd, desired, _loop.Token(_slot, side));
        if (errno != 0)
        {
            Close(LinuxSockets.ToSocketError(errno), reset: true);
            return current;
        }

        return desired;
    }

    private static void Commit(Direction direction, int count)
    {
        var writer = direction.Pipe.Writer;
        writer.Advance(count);
        var flush = writer.FlushAsync(); // the pipe never pauses (the relay bounds it itself): completes at once
        Debug.Assert(flush.IsCompleted, "an unpaused pipe's flush completes synchronously");
        _ = flush.GetAwaiter().GetResult();
    }

    private void Close(SocketError reason, bool reset)
    {
        if (_closed)
        {
            return;
        }

        _closed = true;
        _endReason = reason;
        if (_slot >= 0)
        {
            if (_clientInterest != 0)
            {
                _loop.Unwatch(_clientFd);
            }

            if (_backendInterest != 0)
            {
                _loop.Unwatch(_backendFd);
            }

            _loop.Detach(_slot);
        }

        if (reset)
        {
            TcpForwarder.Reset(_client);
            TcpForwarder.Reset(_backend);
        }
        else
        {
            _client.Dispose();
            _backend.Dispose();
        }
        _up.Pipe.Writer.Complete();
        _up.Pipe.Reader.Complete();
        _down.Pipe.Writer.Complete();
        _down.Pipe.Reader.Complete();
        _done.TrySetResult();
    }

    /// <summary>One direction's state; touched only on the loop thread.</summary>
    private sealed class Direction(Pipe pipe, int fromFd, int toFd, bool toBackend, int readSize)
    {
        public Pipe Pipe { get; } = pipe;

        public int FromFd { get; } = fromFd;

        public int ToFd { get; } = toFd;

        public bool ToBackend { get; } = toBackend;

        public int ReadSize { get; set; } = readSize;

        /// <summary>Bytes read and not yet sent.</summary>
        public long Buffered { get; set; }

        public bool ReadEof { get; set; }

        public bool ReadPaused { get; set; }

        public bool SendBlocked { get; set; }

        public bool FinSent { get; set; }

        public bool CanRead => !ReadEof && !ReadPaused;
    }
}
