using System.Net.Sockets;
using Vip.Protocol;

namespace Vip.Dispatch.Tier1;

/// <summary>
/// The send side of one socket: frames from any thread are appended to a buffer under a short lock, and whoever
/// finds the buffer newly filled flushes it (one send for a whole batch). Sends run through one reusable
/// <see cref="SocketAsyncEventArgs"/>, so steady-state sending allocates nothing.
/// </summary>
/// <remarks>
/// Writers call <see cref="TryWrite"/> (or its variants); when it reports <c>needsFlush</c>, the writer calls
/// <see cref="Flush"/> once it has written its batch (the receive loops flush after each read). While a send is in
/// progress, frames accumulate and its completion sends them; so there is at most one send in flight.
/// </remarks>
internal sealed class FrameOutbox
{
    private readonly object _lock = new();
    private readonly Socket? _socket;
    private readonly SocketAsyncEventArgs? _args;
    private readonly Action<FrameOutbox>? _onFailed;
    private byte[] _pending;
    private int _pendingLength;
    private byte[] _sending;
    private int _sendOffset;
    private int _sendLength;
    private bool _busy;
    private bool _closed;

    /// <summary>Creates an outbox over <paramref name="socket"/>; <c>null</c> discards everything (benchmarks).</summary>
    public FrameOutbox(Socket? socket, int initialCapacity = 4096, Action<FrameOutbox>? onFailed = null)
    {
        _socket = socket;
        _onFailed = onFailed;
        _pending = new byte[initialCapacity];
        _sending = new byte[initialCapacity];
        if (socket is not null)
        {
            _args = new SocketAsyncEventArgs();
            _args.Completed += static (_, e) => ((FrameOutbox)e.UserToken!).OnSendCompleted();
            _args.UserToken = this;
        }
    }

    /// <summary>Bytes written and not yet sent (approximate when read without the lock).</summary>
    public int Backlog => Volatile.Read(ref _pendingLength) + (Volatile.Read(ref _busy) ? _sendLength - _sendOffset : 0);

    /// <summary>Raised (on the sending thread) when the buffer has been fully sent; used for read backpressure.</summary>
    public AsyncSignal? Drained { get; set; }

    /// <summary>True once the outbox is closed (socket error or <see cref="Close"/>).</summary>
    public bool IsClosed => Volatile.Read(ref _closed);

    /// <summary>Appends a frame built from <paramref name="type"/>, <paramref name="requestId"/> and a raw payload.</summary>
    public bool TryWrite(FrameType type, ulong requestId, ReadOnlySpan<byte> payload, out bool needsFlush)
    {
        lock (_lock)
        {
            needsFlush = false;
            if (_closed)
            {
                return false;
            }

            var span = Reserve(FrameHeader.Size + payload.Length);
            new FrameHeader(type, 0, payload.Length, requestId).WriteTo(span);
            payload.CopyTo(span[FrameHeader.Size..]);
            return Commit(FrameHeader.Size + payload.Length, out needsFlush);
        }
    }

    /// <summary>Appends an already-encoded frame, replacing its request id with <paramref name="requestId"/>.</summary>
    public bool TryWriteFrame(ReadOnlySpan<byte> frame, ulong requestId, out bool needsFlush)
    {
        lock (_lock)
        {
            needsFlush = false;
            if (_closed)
            {
                return false;
            }

            var span = Reserve(frame.Length);
            frame.CopyTo(span);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(span[10..], requestId);
            return Commit(frame.Length, out needsFlush);
        }
    }

    private Span<byte> Reserve(int size)
    {
        var need = _pendingLength + size;
        if (need > _pending.Length)
        {
            var grown = new byte[Math.Max(need, _pending.Length * 2)];
            _pending.AsSpan(0, _pendingLength).CopyTo(grown);
            _pending = grown;
        }

        return _pending.AsSpan(_pendingLength, size);
    }

    private bool Commit(int size, out bool needsFlush)
    {
        needsFlush = _pendingLength == 0 && !_busy;
        _pendingLength += size;
        return true;
    }

    /// <summary>Starts sending what is buffered, unless a send is already running (its completion will).</summary>
    public void Flush()
    {
        lock (_lock)
        {
            if (_busy || _pendingLength == 0 || _closed)
            {
                return;
            }

            if (_socket is null)
            {
                _pendingLength = 0;
                return;
            }

            _busy = true;
            Swap();
        }

        SendLoop();
    }

    // Called under the lock: the pending buffer becomes the one being sent.
    private void Swap()
    {
        (_sending, _pending) = (_pending, _sending);
        _sendOffset = 0;
        _sendLength = _pendingLength;
        _pendingLength = 0;
    }

    private void SendLoop()
    {
        var args = _args!;
        while (true)
        {
            args.SetBuffer(_sending, _sendOffset, _sendLength - _sendOffset);
            bool pending;
            try
            {
                pending = _socket!.SendAsync(args);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or SocketException or InvalidOperationException)
            {
                Fail();
                return;
            }

            if (pending || !AfterSend())
            {
                return;
            }
        }
    }

    private void OnSendCompleted()
    {
        if (AfterSend())
        {
            SendLoop();
        }
    }

    // Returns true when there is more to send right away.
    private bool AfterSend()
    {
        var args = _args!;
        if (args.SocketError != SocketError.Success || args.BytesTransferred <= 0)
        {
            Fail();
            return false;
        }

        _sendOffset += args.BytesTransferred;
        if (_sendOffset < _sendLength)
        {
            return true;
        }

        lock (_lock)
        {
            if (_pendingLength == 0 || _closed)
            {
                _busy = false;
                Drained?.Set();
                return false;
            }

            Swap();
            return true;
        }
    }

    private void Fail()
    {
        lock (_lock)
        {
            _closed = true;
            _busy = false;
            _pendingLength = 0;
        }

        Drained?.Set();
        _onFailed?.Invoke(this);
    }

    /// <summary>Refuses further writes; what is buffered is dropped.</summary>
    public void Close()
    {
        lock (_lock)
        {
            _closed = true;
            _pendingLength = 0;
        }

        Drained?.Set();
    }

    /// <summary>Disposes the event args once the socket is gone.</summary>
    public void Dispose() => _args?.Dispose();
}

/// <summary>The outboxes one loop wrote to and must flush once its batch is done.</summary>
internal sealed class FlushBatch
{
    private FrameOutbox[] _items = new FrameOutbox[16];
    private int _count;

    public void Add(FrameOutbox outbox)
    {
        if (_count == _items.Length)
        {
            Array.Resize(ref _items, _count * 2);
        }

        _items[_count++] = outbox;
    }

    public void FlushAll()
    {
        for (var i = 0; i < _count; i++)
        {
            _items[i].Flush();
            _items[i] = null!;
        }

        _count = 0;
    }
}
