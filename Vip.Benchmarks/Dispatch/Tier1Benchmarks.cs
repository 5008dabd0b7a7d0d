using System.Buffers;
using System.Net;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using Vip.Dispatch.Tier1;
using Vip.Protocol;

namespace Vip.Benchmarks.Dispatch;

/// <summary>
/// Tier-1's per-task work in process, without sockets: a TASK payload becomes a FORWARD queued on a tier-2 link
/// (slot rented, tier-2 chosen by rendezvous hash, frame built), then the tier-2's REDIRECT is matched to the slot
/// and queued to the client with the client's request id. The outboxes discard what they would send.
/// </summary>
[MemoryDiagnoser]
public class Tier1Benchmarks
{
    private Tier1Dispatcher _dispatcher = null!;
    private DiscardSink _sink = null!;
    private FlushBatch _batch = null!;
    private byte[] _task = null!;
    private byte[] _redirect = null!;
    private WireEndpoint _client;

    [Params(2, 8)]
    public int Tier2Count { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var options = new Tier1Options { Id = "bench-tier1", Listen = new IPEndPoint(IPAddress.Loopback, 0) };
        for (var i = 0; i < Tier2Count; i++)
        {
            options.Tier2.Add(new IPEndPoint(IPAddress.Loopback, 7000 + i));
        }

        _dispatcher = new Tier1Dispatcher(options, TimeProvider.System, NullLogger.Instance);
        foreach (var link in _dispatcher.Links)
        {
            link.Attach(new FrameOutbox(null));
        }

        _sink = new DiscardSink();
        _batch = new FlushBatch();
        _client = WireEndpoint.From(IPAddress.Parse("10.1.2.3"), 40000);
        _task = Encode(new TaskRequest("client-42", "sha256", [KeyValuePair.Create("tier", "gold"), KeyValuePair.Create("region", "eu")], "cpu>=4, gpu", "some task body bytes"u8.ToArray()));
        _redirect = Encode(new Redirect("app-17", WireEndpoint.From(IPAddress.Parse("10.9.0.17"), 7100), 1_800_000_000_000, new byte[96], []));
        var probe = _dispatcher.Table.TryRent()!;
        _dispatcher.Table.Return(probe);
        Run(); // the slot used by every iteration exists from now on
    }

    private static byte[] Encode<T>(T message) where T : IFrameMessage<T>
    {
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.Write(w, 0, message);
        return w.WrittenSpan[FrameHeader.Size..].ToArray();
    }

    /// <summary>TASK in → FORWARD out → REDIRECT in → REDIRECT out.</summary>
    [Benchmark]
    public int Task_to_forward_and_redirect_back() => Run();

    private int Run()
    {
        _dispatcher.Submit(_sink, 1, _task, _client, null, _batch);
        var slot = _dispatcher.Table.At(0)!;
        _dispatcher.OnAnswer(_dispatcher.Links[slot.LinkIndex], slot.LinkRequestId, FrameType.Redirect, _redirect, _batch);
        _batch.FlushAll();
        return _sink.Delivered;
    }

    private sealed class DiscardSink : IAnswerSink
    {
        private readonly FrameOutbox _outbox = new(null);

        public int Delivered;

        public FrameOutbox? Deliver(ulong clientRequestId, SocketAddress? replyTo, FrameType type, ReadOnlySpan<byte> payload)
        {
            Delivered++;
            return _outbox.TryWrite(type, clientRequestId, payload, out var flush) && flush ? _outbox : null;
        }
    }
}
