using System.Buffers;
using System.Net;
using Vip.Protocol;

namespace Vip.Tests.Protocol;

/// <summary>One encoded sample of every frame type, for round-trip and split tests.</summary>
internal static class FrameSamples
{
    public static readonly KeyValuePair<string, string>[] Attrs = [new("region", "eu"), new("gpu", "true"), new("zone", "ä-1")];

    public static TaskRequest Task => new("client-7", "sha256", Attrs, "region=eu, cores>=4, gpu:20", "hello world"u8.ToArray());

    public static IEnumerable<(string Name, byte[] Bytes)> All()
    {
        yield return ("TASK", Encode(1, Task));
        yield return ("FORWARD", Encode(2, new ForwardRequest("t1-a", WireEndpoint.From(IPAddress.Parse("10.1.2.3"), 40000), Task)));
        yield return ("FORWARD-v6", Encode(3, new ForwardRequest("t1-b", WireEndpoint.From(IPAddress.Parse("2001:db8::7"), 5), Task)));
        yield return ("REDIRECT", Encode(4, new Redirect("app-1", WireEndpoint.From(IPAddress.Loopback, 7001), 1_700_000_000_000, new byte[] { 1, 2, 3, 4, 5 },
            [new RedirectAlternative("app-2", WireEndpoint.From(IPAddress.Parse("127.0.0.3"), 7002))])));
        yield return ("REJECT", Encode(5, new Reject(RejectCode.NoMatchingServer, 500, "no server matches 'gpu'")));
        yield return ("RESULT", Encode(6, new TaskResult(0, "42"u8.ToArray())));
        yield return ("REGISTER", Encode(7, new Register("app-1", WireEndpoint.From(IPAddress.Loopback, 7001), 16, Attrs)));
        yield return ("REGISTER-OK", Encode(8, new RegisterOk(1000, 3000)));
        yield return ("HEARTBEAT", Encode(0, new Heartbeat("app-1", 250, 4, ServerState.Draining)));
        yield return ("DEREGISTER", Encode(9, new Deregister("app-1")));
        yield return ("EXPECT", Encode(0, new Expect(99, WireEndpoint.From(IPAddress.Parse("127.0.0.9"), 0), 1_700_000_030_000, "primes", Attrs)));
        yield return ("CLAIM", Encode(10, new Claim(new byte[64])));
        yield return ("CLAIM-OK", Encode(11, new ClaimOk("app-1")));
        yield return ("CLAIM-DENIED", Encode(12, new ClaimDenied(ClaimDenyReason.Replayed, "ticket already used")));
        yield return ("PING", Encode(13, new Ping("abc"u8.ToArray())));
        yield return ("ADMIN", Encode(14, new AdminRequest("secret", "servers", ["list"])));
        yield return ("ADMIN-RESULT", Encode(15, new AdminResult(0, "{\"servers\":[]}")));
    }

    public static byte[] Encode<T>(ulong requestId, T message) where T : IFrameMessage<T>
    {
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.Write(w, requestId, message);
        return w.WrittenSpan.ToArray();
    }

    /// <summary>Builds a sequence whose segments are cut at the given offsets.</summary>
    public static ReadOnlySequence<byte> Split(byte[] bytes, params int[] cuts)
    {
        var points = cuts.Where(c => c > 0 && c < bytes.Length).Distinct().Order().ToList();
        if (points.Count == 0)
        {
            return new ReadOnlySequence<byte>(bytes);
        }

        Segment? first = null, last = null;
        var start = 0;
        foreach (var end in points.Append(bytes.Length))
        {
            var seg = new Segment(bytes.AsMemory(start, end - start));
            if (first is null)
            {
                first = last = seg;
            }
            else
            {
                last = last!.Append(seg);
            }

            start = end;
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(Segment next)
        {
            next.RunningIndex = RunningIndex + Memory.Length;
            Next = next;
            return next;
        }
    }
}
