using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Vip.Protocol;

namespace Vip.Forwarding;

/// <summary>Per-connection relay settings, shared by every connection started under one options snapshot.</summary>
internal sealed class RelaySettings
{
    public RelaySettings(ForwarderOptions options)
    {
        MinReadSize = options.MinReadSize;
        MaxReadSize = options.MaxReadSize;
        MaxBufferedBytes = options.MaxBufferedBytes;
        // The epoll relay bounds each direction itself (it stops reading the source), so its pipes never pause.
        UnpausedPipeOptions = new PipeOptions(
            pool: null,
            readerScheduler: PipeScheduler.Inline,
            writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: 0,
            resumeWriterThreshold: 0,
            minimumSegmentSize: options.MinReadSize,
            useSynchronizationContext: false);
        // The writer pauses at MaxBufferedBytes unsent and resumes at half; the schedulers are inline so a
        // completed read runs the send directly on the same thread (everything the pipes call is ours and
        // never blocks).
        PipeOptions = new PipeOptions(
            pool: null,
            readerScheduler: PipeScheduler.Inline,
            writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: options.MaxBufferedBytes,
            resumeWriterThreshold: options.MaxBufferedBytes / 2,
            minimumSegmentSize: options.MinReadSize,
            useSynchronizationContext: false);
    }

    public int MinReadSize { get; }

    public int MaxReadSize { get; }

    public int MaxBufferedBytes { get; }

    public PipeOptions PipeOptions { get; }

    public PipeOptions UnpausedPipeOptions { get; }
}

/// <summary>One relayed client connection, whichever transport moves its bytes.</summary>
internal interface IRelay
{
    /// <summary>The client's address.</summary>
    IPEndPoint ClientEndPoint { get; }

    /// <summary>The backend it is relayed to.</summary>
    Backend Target { get; }

    /// <summary>Timestamp (<see cref="TimeProvider.GetTimestamp"/>) of the last byte moved either way.</summary>
    long LastActivity { get; }

    /// <summary>Why the relay ended abnormally (Success when both sides closed in order).</summary>
    SocketError EndReason { get; }

    /// <summary>Queues a PROXY v2 header to go to the backend before any client byte (call before <see cref="RunAsync"/>).</summary>
    void WriteProxyHeader(in ProxyHeader header);

    /// <summary>Relays until both directions are done (or the relay is aborted); both sockets are closed when it completes.</summary>
    Task RunAsync();

    /// <summary>Ends the relay at once (from any thread): both sockets are reset.</summary>
    void Abort(SocketError reason);
}

/// <summary>
/// Relays one client connection to one backend connection, in the shape of Kestrel's SocketConnection: each
/// direction is a pipe with a receive loop (socket → pipe) and a send loop (pipe → socket). A FIN is passed on as
/// a half-close (the other direction carries on); a reset or error anywhere resets both sockets. The pipe's pause
/// threshold is the per-direction buffer bound, so a slow reader slows the writer.
/// </summary>
internal sealed class TcpRelay : IRelay
{
    // After this many reads in a row that completed at once, the loop yields, so one busy connection cannot keep a
    // socket-engine thread (inline completions) from serving the others.
    private const int MaxSynchronousReads = 32;

    private readonly Socket _client;
    private readonly Socket _backend;
    private readonly RelaySettings _settings;
    private readonly ForwardingMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly Pipe _toBackend;
    private readonly Pipe _toClient;
    private readonly SocketReceiver _clientReceiver = new();
    private readonly SocketReceiver _backendReceiver = new();
    private readonly SocketSender _clientSender = new();
    private readonly SocketSender _backendSender = new();
    private long _lastActivity;
    private int _aborted;
    private SocketError _endReason;

    public TcpRelay(Socket client, IPEndPoint clientEndPoint, Socket backend, Backend target, RelaySettings settings, ForwardingMetrics metrics, TimeProvider time)
    {
        _client = client;
        _backend = backend;
        ClientEndPoint = clientEndPoint;
        Target = target;
        _settings = settings;
        _metrics = metrics;
        _time = time;
        _toBackend = new Pipe(settings.PipeOptions);
        _toClient = new Pipe(settings.PipeOptions);
        _lastActivity = time.GetTimestamp();
    }

    public IPEndPoint ClientEndPoint { get; }

    public Backend Target { get; }

    /// <summary>Timestamp (<see cref="TimeProvider.GetTimestamp"/>) of the last byte moved either way.</summary>
    public long LastActivity => Volatile.Read(ref _lastActivity);

    /// <summary>Why the relay ended abnormally (Success when both sides closed in order).</summary>
    public SocketError EndReason => _endReason;

    /// <summary>Queues a PROXY v2 header to go to the backend before any client byte.</summary>
    public void WriteProxyHeader(in ProxyHeader header)
    {
        ProxyProtocolWriter.Write(_toBackend.Writer, header);
        // Nothing reads yet and the header is far below the pause threshold: the flush completes at once.
        var flush = _toBackend.Writer.FlushAsync();
        Debug.Assert(flush.IsCompleted, "a 52-byte flush into an empty pipe completes synchronously");
        _ = flush.GetAwaiter().GetResult();
    }

    /// <summary>Relays until both directions are done (or the relay is aborted), then closes both sockets.</summary>
    public async Task RunAsync()
    {
        var upReceive = ReceiveLoopAsync(_client, _clientReceiver, _toBackend.Writer, toBackend: true);
        var upSend = SendLoopAsync(_toBackend.Reader, _backend, _backendSender);
        var downReceive = ReceiveLoopAsync(_backend, _backendReceiver, _toClient.Writer, toBackend: false);
        var downSend = SendLoopAsync(_toClient.Reader, _client, _clientSender);
        await upReceive.ConfigureAwait(false);
        await upSend.ConfigureAwait(false);
        await downReceive.ConfigureAwait(false);
        await downSend.ConfigureAwait(false);

        _client.Dispose();
        _backend.Dispose();
        _clientReceiver.Dispose();
        _backendReceiver.Dispose();
        _clientSender.Dispose();
        _backendSender.Dispose();
    }

    /// <summary>Ends the relay at once: both sockets are reset (RST), every loop stops.</summary>
    public void Abort(SocketError reason)
    {
        if (Interlocked.Exchange(ref _aborted, 1) != 0)
        {
            return;
        }

        _endReason = reason;
        TcpForwarder.Reset(_client);
        TcpForwarder.Reset(_backend);
    }

    private async Task ReceiveLoopAsync(Socket socket, SocketReceiver receiver, PipeWriter writer, bool toBackend)
    {
        var error = SocketError.Success;
        Exception? exception = null;
        var readSize = _settings.MinReadSize;
        var waitFirst = true;
        var synchronousReads = 0;
        try
        {
            while (true)
            {
                if (waitFirst)
                {
                    // Idle: wait for data without holding a pooled buffer.
                    var waiting = receiver.WaitForDataAsync(socket);
                    if (!waiting.IsCompleted)
                    {
                        synchronousReads = 0;
                    }

                    var wait = await waiting;
                    if (wait.HasError)
                    {
                        error = wait.Error;
                        break;
                    }
                }

                var memory = writer.GetMemory(readSize);
                var pending = receiver.ReceiveAsync(socket, memory);
                if (!pending.IsCompleted)
                {
                    synchronousReads = 0;
                }
                else if (++synchronousReads >= MaxSynchronousReads)
                {
                    // Only a run of reads that never waited gets here (a busy bulk transfer).
                    synchronousReads = 0;
                    await Task.Yield();
                }

                var result = await pending;
                if (result.HasError)
                {
                    error = result.Error;
                    break;
                }

                var n = result.BytesTransferred;
                if (n == 0)
                {
                    break; // FIN: this direction is done; the send loop passes it on as a half-close.
                }

                writer.Advance(n);
                Volatile.Write(ref _lastActivity, _time.GetTimestamp());
                _metrics.AddBytes(toBackend, n);

                // Read sizes follow the traffic: a full buffer doubles the next read and skips the zero-byte wait
                // (more is likely queued); a short one halves it and waits again before renting.
                if (n == memory.Length)
                {
                    waitFirst = false;
                    readSize = Math.Min(readSize * 2, _settings.MaxReadSize);
                }
                else
                {
                    waitFirst = true;
                    if (n < readSize / 4)
                    {
                        readSize = Math.Max(readSize / 2, _settings.MinReadSize);
                    }
                }

                var flush = await writer.FlushAsync();
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    break; // The send side stopped (it failed and aborted the relay).
                }
            }
        }
        catch (Exception ex)
        {
            exception = ex;
        }

        if (error != SocketError.Success || exception is not null)
        {
            Abort(error != SocketError.Success ? error : SocketError.SocketError);
            await writer.CompleteAsync(exception ?? new SocketException((int)error));
        }
        else
        {
            await writer.CompleteAsync();
        }
    }

    private async Task SendLoopAsync(PipeReader reader, Socket socket, SocketSender sender)
    {
        var error = SocketError.Success;
        Exception? exception = null;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync();
                var buffer = result.Buffer;
                if (result.IsCanceled)
                {
                    break;
                }

                if (!buffer.IsEmpty)
                {
                    var sent = await sender.SendAsync(socket, buffer);
                    sender.Reset();
                    if (sent.HasError)
                    {
                        error = sent.Error;
                        break;
                    }

                    Volatile.Write(ref _lastActivity, _time.GetTimestamp());
                }

                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex)
        {
            // The receive side completed the pipe with its error (a reset): it has aborted the relay already.
            exception = ex;
        }

        if (error == SocketError.Success && exception is null)
        {
            await reader.CompleteAsync();
            try
            {
                socket.Shutdown(SocketShutdown.Send); // pass the FIN on; the other direction stays open
            }
            catch (SocketException)
            {
            }
            catch (ObjectDisposedException)
            {
            }
        }
        else
        {
            Abort(error != SocketError.Success ? error : SocketError.ConnectionReset);
            await reader.CompleteAsync(exception);
        }
    }
}
