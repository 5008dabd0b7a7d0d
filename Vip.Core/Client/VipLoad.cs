using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Vip.Protocol;

namespace Vip.Client;

/// <summary>Settings of a load run (<see cref="VipLoad.RunAsync"/>).</summary>
public sealed class VipLoadOptions
{
    /// <summary>The VIP address (or a tier-1 daemon). Required.</summary>
    public EndPoint? Vip { get; set; }

    /// <summary>The tasks to send, used in turn. At least one.</summary>
    public IReadOnlyList<TaskRequest> Tasks { get; set; } = [];

    /// <summary>TCP connections, each one a client. Default 1.</summary>
    public int Connections { get; set; } = 1;

    /// <summary>Tasks in flight per connection: 1 waits for each answer before the next task. Default 64.</summary>
    public int Pipeline { get; set; } = 64;

    /// <summary>Tasks to send in all; the run also stops at <see cref="Duration"/>. Default 100,000.</summary>
    public long TotalTasks { get; set; } = 100_000;

    /// <summary>Longest run; in-flight tasks are then awaited (up to <see cref="DrainTimeout"/>). Default 10 s.</summary>
    public TimeSpan Duration { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long to wait for the last answers. Default 5 s.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Local address to send from. Default null.</summary>
    public IPAddress? LocalAddress { get; set; }

    /// <summary>Caps on answers received. Default <see cref="ProtocolLimits.Default"/>.</summary>
    public ProtocolLimits Limits { get; set; } = ProtocolLimits.Default;
}

/// <summary>What a load run measured. Latencies are from sending a TASK to reading its answer, in the client.</summary>
/// <param name="Sent">TASK frames sent.</param>
/// <param name="Redirects">REDIRECT answers.</param>
/// <param name="Rejects">REJECT answers by code.</param>
/// <param name="Lost">Tasks without an answer at the end (connection failures, drain timeout).</param>
/// <param name="Elapsed">From the first send to the last answer.</param>
/// <param name="Mean">Mean latency.</param>
/// <param name="P50">Median latency.</param>
/// <param name="P90">90th percentile latency.</param>
/// <param name="P99">99th percentile latency.</param>
/// <param name="Max">Largest latency.</param>
/// <param name="Errors">Connection-level failures, as messages.</param>
public sealed record VipLoadReport(long Sent, long Redirects, IReadOnlyDictionary<RejectCode, long> Rejects, long Lost, TimeSpan Elapsed,
    TimeSpan Mean, TimeSpan P50, TimeSpan P90, TimeSpan P99, TimeSpan Max, IReadOnlyList<string> Errors)
{
    /// <summary>Answers (redirects and rejects) per second.</summary>
    public double AnswersPerSecond => Elapsed <= TimeSpan.Zero ? 0 : (Redirects + Rejects.Values.Sum()) / Elapsed.TotalSeconds;
}

/// <summary>
/// A closed-loop load generator over the task protocol, for benchmarks: each connection keeps
/// <see cref="VipLoadOptions.Pipeline"/> TASK frames in flight, sends the next one as each answer arrives, and times
/// every answer. Frames are encoded once and sent in batches; the loop allocates nothing per task.
/// </summary>
public static class VipLoad
{
    /// <summary>Runs the load and reports what it measured. Throws <see cref="ArgumentException"/> for invalid options.</summary>
    public static async Task<VipLoadReport> RunAsync(VipLoadOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Vip is null || options.Tasks.Count == 0 || options.Connections < 1 || options.Pipeline is < 1 or > 65536 || options.TotalTasks < 1)
        {
            throw new ArgumentException("VipLoadOptions needs Vip, at least one task, Connections ≥ 1, 1 ≤ Pipeline ≤ 65536 and TotalTasks ≥ 1", nameof(options));
        }

        var frames = options.Tasks.Select(t => ClientSockets.EncodeFrame(0, t)).ToArray();
        var shared = new SharedBudget(options.TotalTasks, Stopwatch.GetTimestamp() + (long)(options.Duration.TotalSeconds * Stopwatch.Frequency));
        var sockets = new List<Socket>();
        try
        {
            for (var i = 0; i < options.Connections; i++)
            {
                sockets.Add(await ClientSockets.ConnectAsync(options.Vip, options.LocalAddress, TimeSpan.FromSeconds(5), TimeProvider.System, cancellationToken).ConfigureAwait(false));
            }

            var started = Stopwatch.GetTimestamp();
            var workers = sockets.Select((s, i) => Task.Run(() => new LoadConnection(s, frames, options, shared, i).RunAsync(cancellationToken), cancellationToken)).ToArray();
            var results = await Task.WhenAll(workers).ConfigureAwait(false);
            var elapsed = Stopwatch.GetElapsedTime(started);
            var histogram = new LatencyHistogram();
            var rejects = new Dictionary<RejectCode, long>();
            long sent = 0, redirects = 0, lost = 0;
            var errors = new List<string>();
            foreach (var r in results)
            {
                histogram.Merge(r.Histogram);
                sent += r.Sent;
                redirects += r.Redirects;
                lost += r.InFlightAtEnd;
                foreach (var (code, n) in r.Rejects)
                {
                    rejects[code] = rejects.GetValueOrDefault(code) + n;
                }

                if (r.Error is not null)
                {
                    errors.Add(r.Error);
                }
            }

            static TimeSpan Us(double us) => TimeSpan.FromTicks((long)(us * 10));
            return new VipLoadReport(sent, redirects, rejects, lost, elapsed, Us(histogram.MeanMicroseconds), Us(histogram.Percentile(0.50)),
                Us(histogram.Percentile(0.90)), Us(histogram.Percentile(0.99)), Us(histogram.MaxMicroseconds), errors);
        }
        finally
        {
            foreach (var s in sockets)
            {
                s.Dispose();
            }
        }
    }

    private sealed class SharedBudget(long tasks, long deadline)
    {
        private long _remaining = tasks;

        public long Deadline { get; } = deadline;

        public bool TryTake() => Stopwatch.GetTimestamp() < Deadline && Interlocked.Decrement(ref _remaining) >= 0;
    }

    private sealed class LoadConnection
    {
        private readonly Socket _socket;
        private readonly byte[][] _frames;
        private readonly VipLoadOptions _options;
        private readonly SharedBudget _budget;
        private readonly long[] _sentAt;
        private readonly FrameReader _reader;
        private byte[] _out = new byte[64 * 1024];
        private int _outLength;
        private int _next;

        public LoadConnection(Socket socket, byte[][] frames, VipLoadOptions options, SharedBudget budget, int index)
        {
            _socket = socket;
            _frames = frames;
            _options = options;
            _budget = budget;
            _sentAt = new long[options.Pipeline];
            _reader = new FrameReader(options.Limits);
            _next = index; // connections start at different tasks of the mix
        }

        public LatencyHistogram Histogram { get; } = new();
        public long Sent { get; private set; }
        public long Redirects { get; private set; }
        public Dictionary<RejectCode, long> Rejects { get; } = [];
        public int InFlightAtEnd { get; private set; }
        public string? Error { get; private set; }

        private void Queue(int slot)
        {
            var frame = _frames[_next++ % _frames.Length];
            if (_outLength + frame.Length > _out.Length)
            {
                Array.Resize(ref _out, Math.Max(_out.Length * 2, _outLength + frame.Length));
            }

            frame.CopyTo(_out.AsSpan(_outLength));
            BinaryPrimitives.WriteUInt64BigEndian(_out.AsSpan(_outLength + 10), (ulong)slot);
            _outLength += frame.Length;
            _sentAt[slot] = Stopwatch.GetTimestamp();
            Sent++;
        }

        private async ValueTask SendQueuedAsync(CancellationToken cancellationToken)
        {
            var offset = 0;
            while (offset < _outLength)
            {
                offset += await _socket.SendAsync(_out.AsMemory(offset, _outLength - offset), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            }

            _outLength = 0;
        }

        public async Task<LoadConnection> RunAsync(CancellationToken cancellationToken)
        {
            var inFlight = 0;
            var buffer = new byte[256 * 1024];
            int start = 0, end = 0;
            var drainUntil = long.MaxValue;
            try
            {
                for (var slot = 0; slot < _options.Pipeline && _budget.TryTake(); slot++)
                {
                    Queue(slot);
                    inFlight++;
                }

                await SendQueuedAsync(cancellationToken).ConfigureAwait(false);
                while (inFlight > 0)
                {
                    if (drainUntil == long.MaxValue && Stopwatch.GetTimestamp() >= _budget.Deadline)
                    {
                        drainUntil = Stopwatch.GetTimestamp() + (long)(_options.DrainTimeout.TotalSeconds * Stopwatch.Frequency);
                    }

                    if (end == buffer.Length)
                    {
                        Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
                        end -= start;
                        start = 0;
                    }

                    int n;
                    if (drainUntil == long.MaxValue)
                    {
                        n = await _socket.ReceiveAsync(buffer.AsMemory(end), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        // Only while draining: the last answers get a deadline.
                        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                        timeout.CancelAfter(TimeSpan.FromSeconds(Math.Max(0.001, (drainUntil - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency)));
                        n = await _socket.ReceiveAsync(buffer.AsMemory(end), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                    }
                    if (n == 0)
                    {
                        Error = "the connection was closed by the peer";
                        break;
                    }

                    end += n;
                    var now = Stopwatch.GetTimestamp();
                    while (end - start >= FrameHeader.Size)
                    {
                        var header = FrameHeader.Read(buffer.AsSpan(start, end - start), _reader.MaxPayload);
                        var total = FrameHeader.Size + header.Length;
                        if (end - start < total)
                        {
                            break;
                        }

                        var slot = (int)header.RequestId;
                        if ((uint)slot < (uint)_sentAt.Length)
                        {
                            Histogram.Record((now - _sentAt[slot]) * 1_000_000 / Stopwatch.Frequency);
                            if (header.Type == FrameType.Redirect)
                            {
                                Redirects++;
                            }
                            else if (header.Type == FrameType.Reject && header.Length >= 2)
                            {
                                var code = (RejectCode)BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(start + FrameHeader.Size));
                                Rejects[code] = Rejects.GetValueOrDefault(code) + 1;
                            }

                            inFlight--;
                            if (_budget.TryTake())
                            {
                                Queue(slot);
                                inFlight++;
                            }
                            else if (drainUntil == long.MaxValue)
                            {
                                drainUntil = now + (long)(_options.DrainTimeout.TotalSeconds * Stopwatch.Frequency);
                            }
                        }

                        start += total;
                    }

                    if (start == end)
                    {
                        start = end = 0;
                    }

                    if (_outLength > 0)
                    {
                        await SendQueuedAsync(cancellationToken).ConfigureAwait(false);
                    }
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                Error = "answers still missing after the drain timeout";
            }
            catch (Exception ex) when (ex is SocketException or IOException or VipProtocolException or ObjectDisposedException)
            {
                Error = ex.Message;
            }

            InFlightAtEnd = inFlight;
            return this;
        }
    }
}
