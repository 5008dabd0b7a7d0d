using System.Buffers;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;

namespace Vip.Forwarding;

/// <summary>The outcome of one socket operation, without throwing: bytes moved or the socket error.</summary>
internal readonly struct SocketOperationResult
{
    public SocketOperationResult(int bytesTransferred)
    {
        BytesTransferred = bytesTransferred;
        Error = SocketError.Success;
    }

    public SocketOperationResult(SocketError error)
    {
        BytesTransferred = 0;
        Error = error;
    }

    public int BytesTransferred { get; }

    public SocketError Error { get; }

    public bool HasError => Error != SocketError.Success;
}

/// <summary>
/// A reusable <see cref="SocketAsyncEventArgs"/> awaited as a <see cref="ValueTask{T}"/> (the shape of Kestrel's
/// SocketAwaitableEventArgs): no allocation per operation, and the continuation runs on the thread that completed
/// the I/O — no thread-pool hop per read or write.
/// </summary>
internal class SocketAwaitableEventArgs : SocketAsyncEventArgs, IValueTaskSource<SocketOperationResult>, IThreadPoolWorkItem
{
    private static readonly Action<object?> ContinuationCompleted = _ => { };
    private Action<object?>? _continuation;
    private Action<object?>? _queuedContinuation;
    private object? _queuedState;

    public SocketAwaitableEventArgs()
        : base(unsafeSuppressExecutionContextFlow: true)
    {
    }

    protected override void OnCompleted(SocketAsyncEventArgs e)
    {
        var c = _continuation;
        if (c != null || (c = Interlocked.CompareExchange(ref _continuation, ContinuationCompleted, null)) != null)
        {
            var state = UserToken;
            UserToken = null;
            _continuation = ContinuationCompleted;
            c(state);
        }
    }

    public SocketOperationResult GetResult(short token)
    {
        _continuation = null;
        return SocketError == SocketError.Success ? new SocketOperationResult(BytesTransferred) : new SocketOperationResult(SocketError);
    }

    public ValueTaskSourceStatus GetStatus(short token)
        => !ReferenceEquals(_continuation, ContinuationCompleted) ? ValueTaskSourceStatus.Pending
            : SocketError == SocketError.Success ? ValueTaskSourceStatus.Succeeded : ValueTaskSourceStatus.Faulted;

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
    {
        UserToken = state;
        var previous = Interlocked.CompareExchange(ref _continuation, continuation, null);
        if (ReferenceEquals(previous, ContinuationCompleted))
        {
            // Completed between the start of the operation and the await: run it on the thread pool rather than
            // grow the stack. These args are the work item (one operation at a time), so queueing allocates nothing.
            UserToken = null;
            _queuedContinuation = continuation;
            _queuedState = state;
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: true);
        }
    }

    void IThreadPoolWorkItem.Execute()
    {
        var continuation = _queuedContinuation!;
        var state = _queuedState;
        _queuedContinuation = null;
        _queuedState = null;
        continuation(state);
    }

    protected ValueTask<SocketOperationResult> ToValueTask(bool pending)
        => pending ? new ValueTask<SocketOperationResult>(this, 0)
            : new ValueTask<SocketOperationResult>(SocketError == SocketError.Success
                ? new SocketOperationResult(BytesTransferred) : new SocketOperationResult(SocketError));
}

/// <summary>Receives into caller memory; a zero-byte receive waits for data without holding a buffer.</summary>
internal sealed class SocketReceiver : SocketAwaitableEventArgs
{
    public ValueTask<SocketOperationResult> WaitForDataAsync(Socket socket)
    {
        SetBuffer(Memory<byte>.Empty);
        return ToValueTask(socket.ReceiveAsync(this));
    }

    public ValueTask<SocketOperationResult> ReceiveAsync(Socket socket, Memory<byte> buffer)
    {
        SetBuffer(buffer);
        return ToValueTask(socket.ReceiveAsync(this));
    }
}

/// <summary>Sends a whole <see cref="ReadOnlySequence{T}"/>, several segments in one gathered send.</summary>
internal sealed class SocketSender : SocketAwaitableEventArgs
{
    private List<ArraySegment<byte>>? _bufferList;

    public ValueTask<SocketOperationResult> SendAsync(Socket socket, in ReadOnlySequence<byte> buffers)
    {
        if (buffers.IsSingleSegment)
        {
            SetBuffer(MemoryMarshal.AsMemory(buffers.First));
        }
        else
        {
            SetBuffer(null, 0, 0);
            _bufferList ??= new List<ArraySegment<byte>>(8);
            foreach (var b in buffers)
            {
                if (!MemoryMarshal.TryGetArray(b, out var array))
                {
                    throw new InvalidOperationException("pipe memory is not array-backed");
                }

                _bufferList.Add(array);
            }

            // The setter copies the list into the args' own list of buffers.
            BufferList = _bufferList;
        }

        return ToValueTask(socket.SendAsync(this));
    }

    /// <summary>Drops the references to the sent buffers so the pipe can reuse them.</summary>
    public void Reset()
    {
        if (BufferList != null)
        {
            BufferList = null;
            _bufferList?.Clear();
        }
        else
        {
            SetBuffer(null, 0, 0);
        }
    }
}
