using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Vip.Protocol;

namespace Vip.Dispatch.Tier2;

/// <summary>Where the dispatcher writes one batch's answers and notes the control links that hold its EXPECTs.</summary>
internal interface IDispatchSink
{
    /// <summary>The answers (REDIRECT, REJECT) of the batch.</summary>
    IBufferWriter<byte> Output { get; }

    /// <summary>Scratch for the alternatives of one REDIRECT.</summary>
    AlternativeTarget[] Alternatives { get; }

    /// <summary>For logs.</summary>
    IPEndPoint RemoteEndPoint { get; }

    /// <summary>Notes that <paramref name="link"/> holds an EXPECT of the batch; it must be flushed before the answers.</summary>
    void MarkDirty(ControlLink link);
}

/// <summary>
/// One tier-1 daemon's connection to the listen port: FORWARD and PING frames, many in flight, each answered by
/// request id. Frames are handled in batches — every frame the last read delivered — and at the end of a batch
/// the EXPECT notices it produced are sent to their app servers first, then the batch's answers to the tier-1
/// daemon, so no REDIRECT leaves before the EXPECT for it is on its way.
/// </summary>
internal sealed class ForwardLink : IDispatchSink
{
    private readonly Tier2Server _server;
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly FrameReader _reader;
    private ControlLink?[] _dirty = new ControlLink?[16];
    private int _dirtyCount;
    private byte[]? _scratch;

    public ForwardLink(Tier2Server server, Socket socket, ProtocolLimits limits)
    {
        _server = server;
        _socket = socket;
        socket.NoDelay = true;
        RemoteEndPoint = socket.RemoteEndPoint as IPEndPoint ?? new IPEndPoint(IPAddress.None, 0);
        _stream = new NetworkStream(socket, ownsSocket: true);
        _input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, minimumReadSize: 4096, leaveOpen: true));
        _output = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: 16 * 1024, leaveOpen: true));
        _reader = new FrameReader(limits);
    }

    public IPEndPoint RemoteEndPoint { get; }

    /// <summary>Scratch for the alternatives of one REDIRECT (single user: this link's loop).</summary>
    public AlternativeTarget[] Alternatives { get; } = new AlternativeTarget[ProtocolLimits.MaxAlternatives];

    /// <summary>The answers of the current batch are written here (single writer: this link's loop).</summary>
    public IBufferWriter<byte> Output => _output;

    /// <summary>Notes that <paramref name="link"/> holds an EXPECT of the current batch; it is flushed before the answers.</summary>
    public void MarkDirty(ControlLink link)
    {
        for (var i = 0; i < _dirtyCount; i++)
        {
            if (ReferenceEquals(_dirty[i], link))
            {
                return;
            }
        }

        if (_dirtyCount == _dirty.Length)
        {
            // More distinct app servers in one batch than ever before on this link: grow once.
            Array.Resize(ref _dirty, _dirty.Length * 2);
        }

        _dirty[_dirtyCount++] = link;
    }

    public async Task RunAsync(CancellationToken stopping)
    {
        try
        {
            while (true)
            {
                var result = await _input.ReadAsync(stopping).ConfigureAwait(false);
                var buffer = result.Buffer;
                var consumed = buffer.Start;
                var examined = buffer.End;
                var close = false;
                try
                {
                    while (_reader.TryParse(buffer, ref consumed, ref examined, out var frame))
                    {
                        if (!HandleFrame(frame))
                        {
                            close = true;
                            break;
                        }
                    }
                }
                catch (VipProtocolException ex)
                {
                    // A bad header: answer only when its request id can be trusted (magic, version and type were
                    // valid, the length was over the cap), then close.
                    if (ex.Error == ProtocolError.TooLarge && TryPeekRequestId(buffer.Slice(consumed), out var id))
                    {
                        Tier2Frames.WriteReject(_output, id, RejectCode.TooLarge, 0, ex.Message);
                    }

                    Tier2Log.BadFrame(_server.Log, RemoteEndPoint.ToString(), ex.Message);
                    close = true;
                }
                finally
                {
                    _input.AdvanceTo(consumed, examined);
                }

                await FlushBatchAsync().ConfigureAwait(false);
                if (close || result.IsCompleted || result.IsCanceled)
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            // The tier-1 daemon went away.
        }
        finally
        {
            await _input.CompleteAsync().ConfigureAwait(false);
            await _output.CompleteAsync().ConfigureAwait(false);
            _socket.Dispose();
            await _stream.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async ValueTask FlushBatchAsync()
    {
        for (var i = 0; i < _dirtyCount; i++)
        {
            await _dirty[i]!.FlushAsync(_server.Time).ConfigureAwait(false);
            _dirty[i] = null;
        }

        _dirtyCount = 0;
        await _output.FlushAsync().ConfigureAwait(false);
    }

    // Returns false when the link must close after this batch's answers are sent.
    private bool HandleFrame(in Frame frame)
    {
        switch (frame.Type)
        {
            case FrameType.Forward:
            {
                var payload = frame.Payload.IsSingleSegment ? frame.Payload.FirstSpan : Copy(frame.Payload);
                return _server.Dispatch(payload, frame.RequestId, this);
            }

            case FrameType.Ping:
            {
                if (frame.Payload.Length > ProtocolLimits.MaxPingPayload)
                {
                    Tier2Frames.WriteReject(_output, frame.RequestId, RejectCode.TooLarge, 0, "PING payload over 64 bytes"u8);
                    return false;
                }

                Span<byte> data = stackalloc byte[ProtocolLimits.MaxPingPayload];
                frame.Payload.CopyTo(data);
                Tier2Frames.WritePong(_output, frame.RequestId, data[..(int)frame.Payload.Length]);
                return true;
            }

            case FrameType.Pong:
                return true;

            default:
                Tier2Frames.WriteReject(_output, frame.RequestId, RejectCode.Malformed, 0, "the tier-2 listen port takes FORWARD and PING frames only"u8);
                return false;
        }
    }

    private ReadOnlySpan<byte> Copy(in ReadOnlySequence<byte> payload)
    {
        _scratch ??= new byte[_reader.MaxPayload];
        payload.CopyTo(_scratch);
        return _scratch.AsSpan(0, (int)payload.Length);
    }

    private static bool TryPeekRequestId(in ReadOnlySequence<byte> buffer, out ulong id)
    {
        id = 0;
        if (buffer.Length < FrameHeader.Size)
        {
            return false;
        }

        Span<byte> header = stackalloc byte[FrameHeader.Size];
        buffer.Slice(0, FrameHeader.Size).CopyTo(header);
        id = BinaryPrimitives.ReadUInt64BigEndian(header[10..]);
        return true;
    }
}
