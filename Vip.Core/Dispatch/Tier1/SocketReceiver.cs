using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using Vip.Protocol;

namespace Vip.Dispatch.Tier1;

/// <summary>
/// Receives a byte stream from a socket into one contiguous pooled buffer and cuts frames out of it, so every
/// payload is a plain span (no multi-segment copies). The buffer grows to at most one maximal frame. With
/// <c>releaseWhenIdle</c> an idle connection holds no buffer: it waits with a zero-byte read before renting one —
/// unless the caller says the connection is busy (<c>holdBuffer</c>, e.g. tasks in flight), when the zero-byte read
/// would only cost one more system call per read.
/// </summary>
internal sealed class SocketReceiver : IDisposable
{
    private const int InitialSize = 16 * 1024;
    private readonly Socket _socket;
    private readonly int _maxPayload;
    private readonly bool _releaseWhenIdle;
    private byte[]? _buffer;
    private int _start;
    private int _end;

    public SocketReceiver(Socket socket, int maxPayload, bool releaseWhenIdle)
    {
        _socket = socket;
        _maxPayload = maxPayload;
        _releaseWhenIdle = releaseWhenIdle;
    }

    /// <summary>True while a receive buffer is rented (an idle connection with <c>releaseWhenIdle</c> holds none).</summary>
    internal bool HoldsBuffer => _buffer is not null;

    /// <summary>Bytes received and not consumed.</summary>
    public int Available => _end - _start;

    /// <summary>The unconsumed bytes.</summary>
    public ReadOnlySpan<byte> Data => _buffer is null ? default : _buffer.AsSpan(_start, _end - _start);

    /// <summary>Marks <paramref name="count"/> bytes as consumed.</summary>
    public void Consume(int count) => _start += count;

    /// <summary>Receives more bytes; false when the peer closed the connection.</summary>
    public ValueTask<bool> ReceiveAsync(CancellationToken cancellationToken = default) => ReceiveAsync(holdBuffer: false, cancellationToken);

    /// <summary>
    /// Receives more bytes; false when the peer closed the connection. With <paramref name="holdBuffer"/> the buffer
    /// is kept (no zero-byte read first) even when everything was consumed: the caller expects more bytes soon.
    /// </summary>
    public async ValueTask<bool> ReceiveAsync(bool holdBuffer, CancellationToken cancellationToken = default)
    {
        if (_start == _end)
        {
            _start = _end = 0;
            if (_releaseWhenIdle && !holdBuffer)
            {
                if (_buffer is not null)
                {
                    ArrayPool<byte>.Shared.Return(_buffer);
                    _buffer = null;
                }

                // Wait for data before holding a buffer.
                await _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            }
        }

        _buffer ??= ArrayPool<byte>.Shared.Rent(InitialSize);
        if (_end == _buffer.Length)
        {
            Compact();
        }

        var n = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        if (n == 0)
        {
            return false;
        }

        _end += n;
        return true;
    }

    /// <summary>
    /// Cuts the next whole frame; false when more bytes are needed (the buffer is made large enough for it).
    /// Throws <see cref="VipProtocolException"/> on a bad header, before the payload arrives.
    /// </summary>
    public bool TryReadFrame(out FrameHeader header, out ReadOnlySpan<byte> payload)
    {
        payload = default;
        header = default;
        var available = _end - _start;
        if (available < FrameHeader.Size)
        {
            return false;
        }

        var data = _buffer.AsSpan(_start, available);
        header = FrameHeader.Read(data, _maxPayload);
        var total = FrameHeader.Size + header.Length;
        if (available < total)
        {
            EnsureCapacity(total);
            return false;
        }

        payload = data.Slice(FrameHeader.Size, header.Length);
        _start += total;
        return true;
    }

    /// <summary>The request id of the header at the read position (to answer a frame refused for its header).</summary>
    public bool TryPeekRequestId(out ulong requestId)
    {
        requestId = 0;
        if (_end - _start < FrameHeader.Size)
        {
            return false;
        }

        requestId = BinaryPrimitives.ReadUInt64BigEndian(_buffer.AsSpan(_start + 10, 8));
        return true;
    }

    /// <summary>Makes room for <paramref name="size"/> contiguous bytes from the read position.</summary>
    public void EnsureCapacity(int size)
    {
        _buffer ??= ArrayPool<byte>.Shared.Rent(Math.Max(size, InitialSize));
        if (size <= _buffer.Length - _start)
        {
            return;
        }

        if (size <= _buffer.Length)
        {
            Compact();
            return;
        }

        var bigger = ArrayPool<byte>.Shared.Rent(size);
        _buffer.AsSpan(_start, _end - _start).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = bigger;
        _end -= _start;
        _start = 0;
    }

    /// <summary>Moves the unconsumed bytes to the front of the buffer.</summary>
    public void Compact()
    {
        if (_buffer is null || _start == 0)
        {
            return;
        }

        var n = _end - _start;
        _buffer.AsSpan(_start, n).CopyTo(_buffer);
        _start = 0;
        _end = n;
    }

    public void Dispose()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }
    }
}
