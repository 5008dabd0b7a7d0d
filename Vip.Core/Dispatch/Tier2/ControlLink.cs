using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Vip.Dispatch.Tier2;

/// <summary>
/// The sending half of a tier-2 control-port connection (an app server's control link, or a <c>vipd ctl</c>
/// session). Many threads write frames into it (the FORWARD loops write EXPECT notices, the control loop
/// writes REGISTER-OK and ADMIN-RESULT); <see cref="FlushAsync"/> hands what was written to the socket and
/// completes only when the kernel has it, which is how an EXPECT is known to be on its way before the REDIRECT
/// that follows it is written.
/// </summary>
/// <remarks>
/// Two buffers: writers fill one under a short lock while the other is on the socket. A link whose buffered
/// bytes exceed the cap, or whose send stays stuck longer than the send timeout, is closed: an app server that
/// stops reading must not hold up the FORWARD loops.
/// </remarks>
internal sealed class ControlLink
{
    private readonly Socket _socket;
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly int _maxBuffered;
    private readonly CancellationTokenSource _closed = new();
    private ArrayBufferWriter<byte> _pending = new(4096);
    private ArrayBufferWriter<byte> _sending = new(4096);
    private long _sendStartedTimestamp;
    private int _isClosed;

    public ControlLink(Socket socket, int maxBuffered, long id)
    {
        _socket = socket;
        _maxBuffered = maxBuffered;
        Id = id;
        RemoteEndPoint = socket.RemoteEndPoint as IPEndPoint ?? new IPEndPoint(IPAddress.None, 0);
    }

    /// <summary>A number unique to this link within the daemon (for logs and for telling links apart).</summary>
    public long Id { get; }

    public IPEndPoint RemoteEndPoint { get; }

    public Socket Socket => _socket;

    /// <summary>The server id registered on this link, once REGISTER was accepted.</summary>
    public string? ServerId { get; set; }

    /// <summary>The registered server with its encoded id, once REGISTER was accepted.</summary>
    public Tier2Server.LinkedServer? Server { get; set; }

    public bool IsClosed => Volatile.Read(ref _isClosed) != 0;

    public CancellationToken Closed => _closed.Token;

    /// <summary>Timestamp (<see cref="TimeProvider.GetTimestamp"/>) when the current send began; 0 when idle.</summary>
    public long SendStartedTimestamp => Volatile.Read(ref _sendStartedTimestamp);

    /// <summary>
    /// Takes the write lock and returns the buffer to write frames into, or null (lock not held) when the link is
    /// closed or over its cap. Every non-null return must be paired with <see cref="ExitWrite"/>.
    /// </summary>
    public IBufferWriter<byte>? EnterWrite()
    {
        _gate.Enter();
        if (_isClosed != 0 || _pending.WrittenCount > _maxBuffered)
        {
            _gate.Exit();
            if (_isClosed == 0)
            {
                Close(); // over the cap: the app server has stopped reading.
            }

            return null;
        }

        return _pending;
    }

    public void ExitWrite() => _gate.Exit();

    /// <summary>
    /// Sends everything written so far. Completes when the bytes are in the kernel (or the link is closed: then
    /// it completes too, and <see cref="IsClosed"/> says so). Never throws.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask FlushAsync(TimeProvider time)
    {
        await _sendLock.WaitAsync().ConfigureAwait(false);
        try
        {
            lock (_gate)
            {
                (_pending, _sending) = (_sending, _pending);
            }

            if (_sending.WrittenCount == 0 || _isClosed != 0)
            {
                _sending.ResetWrittenCount();
                return;
            }

            Volatile.Write(ref _sendStartedTimestamp, Math.Max(1, time.GetTimestamp()));
            var memory = _sending.WrittenMemory;
            while (!memory.IsEmpty)
            {
                var n = await _socket.SendAsync(memory, SocketFlags.None).ConfigureAwait(false);
                if (n <= 0)
                {
                    Close();
                    break;
                }

                memory = memory[n..];
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            Close();
        }
        finally
        {
            Volatile.Write(ref _sendStartedTimestamp, 0);
            _sending.ResetWrittenCount();
            _sendLock.Release();
        }
    }

    /// <summary>Closes the link; pending sends fail and the receive loop ends. Safe to call more than once.</summary>
    public void Close()
    {
        if (Interlocked.Exchange(ref _isClosed, 1) != 0)
        {
            return;
        }

        try
        {
            _closed.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        _socket.Dispose();
    }
}
