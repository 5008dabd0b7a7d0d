using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using Vip.Dispatch.Tier2;
using Vip.Protocol;
using Vip.Selection;
using Vip.Tickets;

namespace Vip.Benchmarks.Dispatch;

/// <summary>
/// The tier-2 per-task path: FORWARD in, selection among 8 app servers with a two-term requirement, ticket
/// signed, EXPECT written to the chosen server's control link, REDIRECT (with alternatives) out.
/// <c>InProcess</c> calls the dispatcher directly (control links flushed once per batch of 256, as a real
/// batch would); <c>Loopback</c> sends 256 pipelined FORWARDs over a TCP connection to the listen port and
/// reads the 256 answers. Allocated bytes are per task, both sides of the socket included.
/// </summary>
[MemoryDiagnoser]
public class Tier2Benchmarks
{
    private const int Batch = 256;
    private const int Servers = 8;

    private string _dir = "";
    private Tier2Server _server = null!;
    private Socket[] _apps = [];
    private Task[] _drains = [];
    private byte[] _payload = [];
    private byte[] _frames = [];
    private byte[] _receive = [];
    private Socket _tier1 = null!;
    private BenchSink _sink = null!;
    private string[] _ids = [];

    [GlobalSetup]
    public void Setup()
    {
        _dir = Path.Combine(Path.GetTempPath(), "vip-bench-tier2-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_dir);
        var options = new Tier2Options { DatabasePath = Path.Combine(_dir, "bench.db"), AdminToken = "t" };
        options.Selection.HeartbeatInterval = TimeSpan.FromMinutes(1);
        options.Selection.MissedHeartbeats = 100;
        options.Selection.PublishDelay = TimeSpan.Zero;
        _server = new Tier2Server(options, TicketKeyRing.CreateNew());
        _server.StartAsync().GetAwaiter().GetResult();

        _apps = new Socket[Servers];
        _ids = new string[Servers];
        for (var i = 0; i < Servers; i++)
        {
            _ids[i] = "app-" + i;
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            s.Connect(_server.ControlEndPoint);
            var attrs = new[] { KeyValuePair.Create("region", i % 2 == 0 ? "eu" : "us"), KeyValuePair.Create("cores", (4 << (i % 3)).ToString(System.Globalization.CultureInfo.InvariantCulture)) };
            Send(s, 1, new Register(_ids[i], WireEndpoint.From(IPAddress.Parse("127.0.2." + (i + 1)), 7000 + i), 1_000_000, attrs));
            Send(s, 0, new Heartbeat(_ids[i], 0, 0, Vip.Protocol.ServerState.Up));
            _apps[i] = s;
        }

        // The app servers read their EXPECTs (and REGISTER-OK) and throw them away.
        _drains = _apps.Select(s => Task.Run(() =>
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (s.Receive(buffer) > 0)
                {
                }
            }
            catch (SocketException)
            {
            }
            catch (ObjectDisposedException)
            {
            }
        })).ToArray();
        while (_server.Selection.Servers.Count(e => e.State == Vip.Selection.ServerState.Up) < Servers)
        {
            Thread.Sleep(10);
        }

        var forward = new ForwardRequest("t1", WireEndpoint.From(IPAddress.Loopback, 40000),
            new TaskRequest("client-7", "sha256", [KeyValuePair.Create("n", "1")], "region=eu,cores>=8", "abc"u8.ToArray()));
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.Write(w, 1, forward);
        _payload = w.WrittenSpan[FrameHeader.Size..].ToArray();
        var all = new ArrayBufferWriter<byte>();
        for (var i = 0; i < Batch; i++)
        {
            FrameWriter.Write(all, (ulong)i, forward);
        }

        _frames = all.WrittenSpan.ToArray();
        _receive = new byte[1024 * 1024];
        _sink = new BenchSink();
        _tier1 = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        _tier1.Connect(_server.ListenEndPoint);

        // Warm the requirement cache and the per-thread selection buffers; check the answer is a REDIRECT.
        _server.Dispatch(_payload, 1, _sink);
        if (_sink.Buffer.WrittenSpan[3] != (byte)FrameType.Redirect)
        {
            throw new InvalidOperationException("the benchmark setup does not produce a REDIRECT");
        }

        _sink.Flush(_server);
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public void ForwardToRedirect_InProcess()
    {
        for (var i = 0; i < Batch; i++)
        {
            _server.Dispatch(_payload, (ulong)i, _sink);
        }

        _sink.Flush(_server);
        Heartbeats();
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public void ForwardToRedirect_Loopback()
    {
        _tier1.Send(_frames);
        var answers = 0;
        var filled = 0;
        while (answers < Batch)
        {
            filled += _tier1.Receive(_receive.AsSpan(filled));
            var pos = 0;
            while (filled - pos >= FrameHeader.Size)
            {
                var length = (int)BinaryPrimitives.ReadUInt32BigEndian(_receive.AsSpan(pos + 6));
                if (filled - pos < FrameHeader.Size + length)
                {
                    break;
                }

                if (_receive[pos + 3] != (byte)FrameType.Redirect)
                {
                    throw new InvalidOperationException("expected a REDIRECT");
                }

                pos += FrameHeader.Size + length;
                answers++;
            }

            _receive.AsSpan(pos, filled - pos).CopyTo(_receive);
            filled -= pos;
        }

        Heartbeats();
    }

    // Tickets issued count as load until the next heartbeat: reset them as heartbeats would.
    private void Heartbeats()
    {
        foreach (var id in _ids)
        {
            _server.Selection.Heartbeat(id, new ServerHeartbeat(0, 0, false));
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _tier1.Dispose();
        foreach (var s in _apps)
        {
            s.Dispose();
        }

        Task.WaitAll(_drains, TimeSpan.FromSeconds(5));
        _server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Directory.Delete(_dir, recursive: true);
    }

    private static void Send<T>(Socket s, ulong id, T message) where T : IFrameMessage<T>
    {
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.Write(w, id, message);
        s.Send(w.WrittenSpan);
    }

    private sealed class BenchSink : IDispatchSink
    {
        private readonly List<ControlLink> _dirty = new(Servers);

        public ArrayBufferWriter<byte> Buffer { get; } = new(256 * 1024);

        public IBufferWriter<byte> Output => Buffer;

        public AlternativeTarget[] Alternatives { get; } = new AlternativeTarget[ProtocolLimits.MaxAlternatives];

        public IPEndPoint RemoteEndPoint { get; } = new(IPAddress.Loopback, 0);

        public void MarkDirty(ControlLink link)
        {
            if (!_dirty.Contains(link))
            {
                _dirty.Add(link);
            }
        }

        public void Flush(Tier2Server server)
        {
            foreach (var link in _dirty)
            {
                var flush = link.FlushAsync(TimeProvider.System);
                if (flush.IsCompleted)
                {
                    flush.GetAwaiter().GetResult();
                }
                else
                {
                    flush.AsTask().GetAwaiter().GetResult();
                }
            }

            _dirty.Clear();
            Buffer.ResetWrittenCount();
        }
    }
}
