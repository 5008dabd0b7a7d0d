using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Vip.Protocol;

namespace Vip.Transport;

/// <summary>Handles one received frame. The frame's payload is valid only during the call.</summary>
public delegate void FrameHandler(FrameConnection connection, in Frame frame);

/// <summary>
/// A framed, full-duplex Vip connection over a socket: one receive loop that cuts frames and hands them to a
/// handler, and a send side that any number of callers may use at once (writes are serialised).
/// Used by every link that speaks frames: tier-1 ↔ tier-2, app server ↔ tier-2, client ↔ app server, ctl.
/// </summary>
public sealed class FrameConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly FrameReader _frameReader;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _closed = new();
    private int _disposed;

    /// <summary>Wraps a connected socket.</summary>
    public FrameConnection(Socket socket, ProtocolLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(socket);
        _socket = socket;
        _socket.NoDelay = true;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, minimumReadSize: 4096, leaveOpen: true));
        _output = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: 4096, leaveOpen: true));
        _frameReader = new FrameReader(limits);
        RemoteEndPoint = socket.RemoteEndPoint as IPEndPoint ?? new IPEndPoint(IPAddress.None, 0);
        LocalEndPoint = socket.LocalEndPoint as IPEndPoint ?? new IPEndPoint(IPAddress.None, 0);
    }

    /// <summary>The peer's address.</summary>
    public IPEndPoint RemoteEndPoint { get; }

    /// <summary>This side's address.</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Cancelled when the connection is closed, by either side.</summary>
    public CancellationToken Closed => _closed.Token;

    /// <summary>Arbitrary state for the owner of the connection.</summary>
    public object? State { get; set; }

    /// <summary>Connects to <paramref name="endPoint"/> within <paramref name="timeout"/>.</summary>
    public static async Task<FrameConnection> ConnectAsync(EndPoint endPoint, TimeSpan timeout, ProtocolLimits? limits = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            cts.CancelAfter(timeout);
            await socket.ConnectAsync(endPoint, cts.Token).ConfigureAwait(false);
            return new FrameConnection(socket, limits);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new SocketException((int)SocketError.TimedOut);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads frames until the peer closes, <paramref name="cancellationToken"/> fires or the connection is disposed,
    /// calling <paramref name="handler"/> for each. A protocol error ends the loop with <see cref="VipProtocolException"/>.
    /// </summary>
    public async Task RunAsync(FrameHandler handler, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(handler);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closed.Token);
        try
        {
            while (true)
            {
                var result = await _input.ReadAsync(linked.Token).ConfigureAwait(false);
                var buffer = result.Buffer;
                var consumed = buffer.Start;
                var examined = buffer.End;
                try
                {
                    while (_frameReader.TryParse(buffer, ref consumed, ref examined, out var frame))
                    {
                        handler(this, frame);
                    }

                    if (result.IsCompleted || result.IsCanceled)
                    {
                        return;
                    }
                }
                finally
                {
                    _input.AdvanceTo(consumed, examined);
                }
            }
        }
        catch (OperationCanceledException) when (linked.IsCancellationRequested)
        {
        }
        catch (IOException)
        {
            // Reset or abort by the peer: the connection is simply over.
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            Close();
        }
    }

    /// <summary>Sends one message as a frame.</summary>
    public ValueTask SendAsync<T>(ulong requestId, T message, CancellationToken cancellationToken = default) where T : IFrameMessage<T>
        => SendAsync(static (w, s) => FrameWriter.Write(w, s.requestId, s.message), (requestId, message), cancellationToken);

    /// <summary>Writes whatever <paramref name="write"/> writes, then flushes; writes from concurrent callers never interleave.</summary>
    public async ValueTask SendAsync<TState>(Action<IBufferWriter<byte>, TState> write, TState state, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(write);
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            write(_output, state);
            var flush = await _output.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (flush.IsCompleted)
            {
                throw new IOException("the connection is closed");
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            Close();
            throw new IOException("the connection is closed", ex);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Closes the connection (both directions). Safe to call more than once.</summary>
    public void Close()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
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
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }

        _socket.Dispose();
    }

    /// <inheritdoc/>
    public ValueTask DisposeAsync()
    {
        Close();
        return ValueTask.CompletedTask;
    }
}
