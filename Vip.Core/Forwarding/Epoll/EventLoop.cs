using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace Vip.Forwarding.Epoll;

/// <summary>Something registered with an <see cref="EventLoop"/>; every call comes on the loop's thread.</summary>
internal interface IEventHandler
{
    /// <summary>Readiness on one of the handler's file descriptors (<paramref name="side"/> 0 or 1).</summary>
    void OnEvents(int side, uint events);

    /// <summary>A command posted with <see cref="EventLoop.Post"/> runs.</summary>
    void OnCommand(int command);

    /// <summary>A handler call threw: end whatever the handler does, at once.</summary>
    void OnFailure(Exception exception);
}

/// <summary>
/// One thread waiting on one epoll instance (level-triggered) and running the handlers registered with it. All
/// of a handler's socket work happens on this thread, so a relay needs no locks; other threads reach a handler
/// only through <see cref="Post"/>. The epoll data of each fd names a slot and a generation, so an event for a
/// handler that ended in the same batch is recognised and dropped.
/// </summary>
internal sealed unsafe class EventLoop : IDisposable
{
    private const int MaxEvents = 256;
    private const ulong WakeToken = ulong.MaxValue;

    private readonly int _epoll;
    private readonly int _wake;
    private readonly byte* _events;
    private readonly Thread _thread;
    private readonly ILogger _logger;
    private readonly ConcurrentQueue<(IEventHandler Handler, int Command)> _commands = new();
    private IEventHandler?[] _handlers = new IEventHandler?[64];
    private uint[] _generations = new uint[64];
    private readonly Stack<int> _free = new();
    private int _used;
    private int _wakePending;
    private volatile bool _stopping;

    public EventLoop(string name, ILogger logger)
    {
        _logger = logger;
        _epoll = LinuxSockets.CreateEpoll();
        if (_epoll < 0)
        {
            throw new InvalidOperationException($"epoll_create1 failed (errno {Marshal.GetLastPInvokeError()})");
        }

        _wake = LinuxSockets.CreateEventFd();
        if (_wake < 0 || LinuxSockets.Control(_epoll, LinuxSockets.EPOLL_CTL_ADD, _wake, LinuxSockets.EPOLLIN, WakeToken) != 0)
        {
            LinuxSockets.Close(_epoll);
            throw new InvalidOperationException("eventfd for the relay loop could not be set up");
        }

        _events = (byte*)NativeMemory.Alloc((nuint)(MaxEvents * LinuxSockets.EventSize));
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>True on the loop's own thread.</summary>
    public bool IsOnLoop => Thread.CurrentThread == _thread;

    /// <summary>Runs <see cref="IEventHandler.OnCommand"/> on the loop thread soon (from any thread).</summary>
    public void Post(IEventHandler handler, int command)
    {
        _commands.Enqueue((handler, command));
        if (Interlocked.Exchange(ref _wakePending, 1) == 0)
        {
            LinuxSockets.Signal(_wake);
        }
    }

    /// <summary>Takes a slot for a handler (loop thread only); its epoll data for side s is <see cref="Token"/>(slot, s).</summary>
    public int Attach(IEventHandler handler)
    {
        if (!_free.TryPop(out var slot))
        {
            if (_used == _handlers.Length)
            {
                Array.Resize(ref _handlers, _handlers.Length * 2);
                Array.Resize(ref _generations, _generations.Length * 2);
            }

            slot = _used++;
        }

        _handlers[slot] = handler;
        return slot;
    }

    /// <summary>Stops watching <paramref name="fd"/> and frees its handler's slot (loop thread only).</summary>
    public void Detach(int slot, int fd)
    {
        Unwatch(fd);
        Detach(slot);
    }

    /// <summary>Removes interest in <paramref name="fd"/> (loop thread only); an fd already gone from the set is no error here.</summary>
    public void Unwatch(int fd) => _ = Control(LinuxSockets.EPOLL_CTL_DEL, fd, 0, 0);

    /// <summary>Frees a slot (loop thread only); events still queued for it are dropped.</summary>
    public void Detach(int slot)
    {
        _handlers[slot] = null;
        _generations[slot]++;
        _free.Push(slot);
    }

    /// <summary>The epoll data word for side <paramref name="side"/> of the handler in <paramref name="slot"/>.</summary>
    public ulong Token(int slot, int side) => ((ulong)_generations[slot] << 32) | ((uint)slot << 1) | (uint)side;

    /// <summary>Adds, changes or removes interest in <paramref name="fd"/>; returns 0 or the errno.</summary>
    public int Control(int operation, int fd, uint events, ulong token) => LinuxSockets.Control(_epoll, operation, fd, events, token);

    private void Run()
    {
        while (!_stopping)
        {
            var n = LinuxSockets.Wait(_epoll, _events, MaxEvents, -1);
            if (n < 0)
            {
                if (-n == LinuxSockets.EINTR)
                {
                    continue;
                }

                ForwardingLog.RelayLoopFailed(_logger, -n);
                Thread.Sleep(10);
                continue;
            }

            for (var i = 0; i < n; i++)
            {
                var data = LinuxSockets.EventData(_events, i);
                if (data == WakeToken)
                {
                    // Drain first, then re-arm (with a full fence): a Post that saw the flag still set has queued its
                    // command before this point, and the queue is read after the batch. Re-arming before the drain
                    // could swallow a signal and leave the flag set with nobody to wake the loop.
                    LinuxSockets.Drain(_wake);
                    Interlocked.Exchange(ref _wakePending, 0);
                    continue;
                }

                var slot = (int)((uint)data >> 1);
                if (slot >= _used || _generations[slot] != (uint)(data >> 32) || _handlers[slot] is not { } handler)
                {
                    continue; // the handler ended earlier in this batch
                }

                try
                {
                    handler.OnEvents((int)(data & 1), LinuxSockets.EventMask(_events, i));
                }
                catch (Exception ex)
                {
                    handler.OnFailure(ex);
                }
            }

            while (_commands.TryDequeue(out var command))
            {
                try
                {
                    command.Handler.OnCommand(command.Command);
                }
                catch (Exception ex)
                {
                    command.Handler.OnFailure(ex);
                }
            }
        }

        // Stopped: end whatever is still attached or queued, so no awaiter waits for a loop that is gone.
        var stopped = new ObjectDisposedException(nameof(EventLoop));
        for (var slot = 0; slot < _used; slot++)
        {
            _handlers[slot]?.OnFailure(stopped);
        }

        while (_commands.TryDequeue(out var command))
        {
            command.Handler.OnFailure(stopped);
        }
    }

    /// <summary>Stops the thread (handlers still attached are not called again) and frees the epoll instance.</summary>
    public void Dispose()
    {
        if (_stopping)
        {
            return;
        }

        _stopping = true;
        LinuxSockets.Signal(_wake);
        if (IsOnLoop || !_thread.Join(TimeSpan.FromSeconds(5)))
        {
            return; // the thread still uses the epoll instance and the event buffer: leave them to the process
        }

        while (_commands.TryDequeue(out var late))
        {
            late.Handler.OnFailure(new ObjectDisposedException(nameof(EventLoop)));
        }

        LinuxSockets.Close(_wake);
        LinuxSockets.Close(_epoll);
        NativeMemory.Free(_events);
    }
}

/// <summary>A fixed set of <see cref="EventLoop"/>s (one per core by default) handing out loops in turn.</summary>
internal sealed class EventLoopGroup : IDisposable
{
    private readonly EventLoop[] _loops;
    private int _next = -1;

    public EventLoopGroup(int count, ILogger logger)
    {
        _loops = new EventLoop[count];
        for (var i = 0; i < count; i++)
        {
            _loops[i] = new EventLoop($"vip-relay-{i}", logger);
        }
    }

    /// <summary>The next loop in round-robin order.</summary>
    public EventLoop Next() => _loops[(int)((uint)Interlocked.Increment(ref _next) % (uint)_loops.Length)];

    public void Dispose()
    {
        foreach (var loop in _loops)
        {
            loop.Dispose();
        }
    }
}
