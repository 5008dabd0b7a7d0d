using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using Vip.Protocol;

namespace Vip.Fuzz;

/// <summary>
/// The seed corpora: valid inputs of every kind plus the hostile shapes the specs name. <c>Vip.Fuzz seed DIR</c>
/// writes them to DIR/&lt;target&gt;/; the files are committed under fuzz/corpus. Byte 0 of every input is the
/// cut selector (see <see cref="Segments"/>). Files named <c>valid-*</c> must be accepted by their target; the
/// regression tests check that too.
/// </summary>
internal static class Seeds
{
    private static readonly KeyValuePair<string, string>[] Attrs = [new("region", "eu"), new("gpu", "true"), new("zone", "ä-1")];

    private static TaskRequest Task => new("client-7", "sha256", Attrs, "region=eu, cores>=4, gpu:20", "hello world"u8.ToArray());

    public static IEnumerable<(string Target, string Name, byte[] Bytes)> All()
    {
        foreach (var (name, bytes) in FrameSeeds())
        {
            yield return ("frame", name, bytes);
        }

        foreach (var (name, bytes) in ProxySeeds())
        {
            yield return ("proxy", name, bytes);
        }

        foreach (var (name, text) in RequirementSeeds())
        {
            yield return ("requirement", name, [0, .. System.Text.Encoding.UTF8.GetBytes(text)]);
        }
    }

    public static void WriteAll(string root)
    {
        var n = 0;
        foreach (var (target, name, bytes) in All())
        {
            var dir = Path.Combine(root, target);
            Directory.CreateDirectory(dir);
            File.WriteAllBytes(Path.Combine(dir, name), bytes);
            n++;
        }

        Console.WriteLine($"wrote {n} seed files under {root}");
    }

    private static IEnumerable<(string, byte[])> FrameSeeds()
    {
        var v4 = WireEndpoint.From(IPAddress.Parse("10.1.2.3"), 40000);
        var v6 = WireEndpoint.From(IPAddress.Parse("2001:db8::7"), 5);
        var valid = new (string Name, byte[] Frame)[]
        {
            ("task", Encode(1, Task)),
            ("task-empty", Encode(2, new TaskRequest("c", "echo", [], "", ReadOnlyMemory<byte>.Empty))),
            ("forward-v4", Encode(3, new ForwardRequest("t1-a", v4, Task))),
            ("forward-v6", Encode(4, new ForwardRequest("t1-b", v6, Task))),
            ("redirect", Encode(5, new Redirect("app-1", WireEndpoint.From(IPAddress.Loopback, 7001), 1_700_000_000_000, new byte[] { 1, 2, 3, 4, 5 },
                [new RedirectAlternative("app-2", WireEndpoint.From(IPAddress.Parse("127.0.0.3"), 7002)), new RedirectAlternative("app-3", v6)]))),
            ("reject", Encode(6, new Reject(RejectCode.TooManyInFlight, 250, "too many tasks in flight on this connection"))),
            ("result", Encode(7, new TaskResult(0, "42"u8.ToArray()))),
            ("register", Encode(8, new Register("app-1", WireEndpoint.From(IPAddress.Loopback, 7001), 16, Attrs))),
            ("register-ok", Encode(9, new RegisterOk(1000, 3000))),
            ("heartbeat", Encode(0, new Heartbeat("app-1", 250, 4, ServerState.Draining))),
            ("deregister", Encode(10, new Deregister("app-1"))),
            ("expect", Encode(0, new Expect(99, WireEndpoint.From(IPAddress.Parse("127.0.0.9"), 0), 1_700_000_030_000, "primes", Attrs))),
            ("claim", Encode(11, new Claim(Enumerable.Range(0, 64).Select(i => (byte)i).ToArray()))),
            ("claim-ok", Encode(12, new ClaimOk("app-1"))),
            ("claim-denied", Encode(13, new ClaimDenied(ClaimDenyReason.Replayed, "ticket already used"))),
            ("ping", Encode(14, new Ping("abc"u8.ToArray()))),
            ("ping-empty", Raw(FrameType.Ping, 15, [])),
            ("pong", Raw(FrameType.Pong, 15, "abc"u8)),
            ("admin", Encode(16, new AdminRequest("secret", "servers", ["list", "--json"]))),
            ("admin-result", Encode(17, new AdminResult(0, "{\"servers\":[]}"))),
            ("result-max-payload", Encode(18, new TaskResult(0, new byte[FuzzTargets.FrameMaxPayload - 6]))),
        };

        foreach (var (name, frame) in valid)
        {
            yield return ("valid-" + name, [0, .. frame]);
        }

        // The same frames cut into segments (selectors 3 and 19 cut at different places).
        yield return ("valid-task-split", [3, .. valid[0].Frame]);
        yield return ("valid-redirect-split", [19, .. valid[4].Frame]);
        yield return ("valid-stream-task-ping-heartbeat", [7, .. valid[0].Frame, .. valid[15].Frame, .. valid[9].Frame]);

        var task = valid[0].Frame;
        yield return ("partial-header", [0, .. task.AsSpan(0, 10)]);
        yield return ("partial-payload", [0, .. task.AsSpan(0, task.Length - 3)]);
        yield return ("frame-then-partial", [0, .. task, .. task.AsSpan(0, 20)]);
        yield return ("bad-magic", [0, .. Header(magic: 0x4745, type: 1, length: 0)]);
        yield return ("http-request", [0, .. "GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8]);
        yield return ("bad-version", [0, .. Header(version: 2, type: 1, length: 0)]);
        yield return ("unknown-type", [0, .. Header(type: 0x7F, length: 0)]);
        yield return ("too-large", [0, .. Header(type: 1, length: FuzzTargets.FrameMaxPayload + 1)]);
        yield return ("too-large-max", [0, .. Header(type: 1, length: uint.MaxValue)]);
        yield return ("trailing-byte", [0, .. Raw(FrameType.RegisterOk, 1, [0, 0, 0, 1, 0, 0, 0, 2, 9])]);
        yield return ("empty-client-id", [0, .. Raw(FrameType.Task, 1, [0, 4, .. "echo"u8, 0, 0, 0, 0, 0, 0, 0])]);

        var attrs33 = new List<byte> { 1, (byte)'c', 1, (byte)'k', 33 };
        yield return ("attrs-over-cap", [0, .. Raw(FrameType.Task, 1, [.. attrs33, 0, 0, 0, 0, 0, 0])]);
        yield return ("attrs-duplicate-key", [0, .. Raw(FrameType.Task, 1, [1, (byte)'c', 1, (byte)'k', 2, 1, (byte)'a', 0, 1, (byte)'a', 0, 0, 0, 0, 0, 0, 0])]);
        yield return ("invalid-utf8", [0, .. Raw(FrameType.Deregister, 1, [2, 0xC3, 0x28])]);
        var str16 = new byte[2 + 4097];
        BinaryPrimitives.WriteUInt16BigEndian(str16, 4097);
        yield return ("str16-over-cap", [0, .. Raw(FrameType.Reject, 1, [0, 1, 0, 0, 0, 0, .. str16.AsSpan(0, 4000)])]);
        yield return ("bytes16-over-cap", [0, .. Raw(FrameType.Claim, 1, [0x04, 0x01, 1, 2, 3])]);
        yield return ("bytes32-past-end", [0, .. Raw(FrameType.Result, 1, [0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 1])]);
        yield return ("endpoint-bad-family", [0, .. Raw(FrameType.Forward, 1, [1, (byte)'t', 5, 1, 2, 3, 4, 0, 80])]);
        yield return ("redirect-alternatives-over-cap", [0, .. Raw(FrameType.Redirect, 1, [1, (byte)'a', 4, 127, 0, 0, 1, 0x1B, 0x59, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9])]);
        yield return ("ping-over-cap", [0, .. Raw(FrameType.Ping, 1, new byte[ProtocolLimits.MaxPingPayload + 1])]);
        yield return ("admin-args-over-cap", [0, .. Raw(FrameType.Admin, 1, [1, (byte)'t', 1, (byte)'c', 33])]);
        yield return ("heartbeat-bad-state", [0, .. Raw(FrameType.Heartbeat, 0, [1, (byte)'a', 0, 1, 0, 0, 0, 0, 7])]);
    }

    private static IEnumerable<(string, byte[])> ProxySeeds()
    {
        var v4Tcp = ProxyHeader.Create(ProxyTransport.Stream, new IPEndPoint(IPAddress.Parse("10.77.0.10"), 51000), new IPEndPoint(IPAddress.Parse("10.77.0.2"), 7000));
        var v6Udp = ProxyHeader.Create(ProxyTransport.Datagram, new IPEndPoint(IPAddress.Parse("2001:db8::10"), 51000), new IPEndPoint(IPAddress.Parse("2001:db8::2"), 7000));
        var v4 = Proxy(v4Tcp);
        var v6 = Proxy(v6Udp);
        var local = Proxy(ProxyHeader.Local);
        var ping = Raw(FrameType.Ping, 1, []);
        yield return ("valid-v4-tcp", [0, .. v4]);
        yield return ("valid-v4-tcp-split", [5, .. v4]);
        yield return ("valid-v6-udp", [0, .. v6]);
        yield return ("valid-v6-udp-split", [13, .. v6]);
        yield return ("valid-local", [0, .. local]);
        yield return ("valid-v4-then-frame", [0, .. v4, .. ping]);

        // v4 with a TLV (type 0x04 NOOP, 3 bytes) after the address block: length 12 + 6.
        var tlv = v4.ToList();
        BinaryPrimitives.WriteUInt16BigEndian(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tlv)[14..], 18);
        tlv.AddRange([0x04, 0x00, 0x03, 0xAA, 0xBB, 0xCC]);
        yield return ("valid-v4-tlv", [0, .. tlv]);

        // LOCAL carrying an IPv4 block, as HAProxy's health checks may.
        var localV4 = v4.ToArray();
        localV4[12] = 0x20;
        yield return ("valid-local-with-block", [0, .. localV4]);

        yield return ("truncated-signature", [0, .. v4.AsSpan(0, 7)]);
        yield return ("truncated-fixed", [0, .. v4.AsSpan(0, 13)]);
        yield return ("truncated-block", [0, .. v4.AsSpan(0, 20)]);
        var badSig = v4.ToArray();
        badSig[3] = 0x0B;
        yield return ("bad-signature", [0, .. badSig]);
        yield return ("proxy-v1-text", [0, .. "PROXY TCP4 10.0.0.1 10.0.0.2 1000 2000\r\n"u8]);
        var badVersion = v4.ToArray();
        badVersion[12] = 0x11;
        yield return ("bad-version", [0, .. badVersion]);
        var badCommand = v4.ToArray();
        badCommand[12] = 0x2F;
        yield return ("bad-command", [0, .. badCommand]);
        var unix = v4.ToArray();
        unix[13] = 0x31;
        yield return ("unix-family", [0, .. unix]);
        var tooLong = v4.ToArray();
        BinaryPrimitives.WriteUInt16BigEndian(tooLong.AsSpan(14), ProxyProtocol.DefaultMaxLength + 1);
        yield return ("length-over-cap", [0, .. tooLong]);
        var shortBlock = v4.ToArray();
        BinaryPrimitives.WriteUInt16BigEndian(shortBlock.AsSpan(14), 11);
        yield return ("block-shorter-than-family", [0, .. shortBlock]);
    }

    private static IEnumerable<(string, string)> RequirementSeeds()
    {
        yield return ("valid-empty", "");
        yield return ("valid-blank", "   ");
        yield return ("valid-equal", "region=eu");
        yield return ("valid-not-equal", "region != us");
        yield return ("valid-exists", "gpu");
        yield return ("valid-absent", "!gpu");
        yield return ("valid-numeric", "cores>=4, mem > 15.5, load<0.75, disk <= 100");
        yield return ("valid-in", "region in (eu, us, ap-south-1)");
        yield return ("valid-notin", "zone NOTIN (a,b)");
        yield return ("valid-weights", "region=eu:20, gpu:5, !spot:1000");
        yield return ("valid-mixed", "region=eu, cores>=4, gpu:20, zone in (a, b):3, !draining");
        yield return ("valid-name-chars", "k8s.io/node-pool@v1+x_y = a.b-c/d@e+f_g");
        yield return ("valid-max-terms", string.Join(", ", Enumerable.Range(0, 32).Select(i => $"k{i}")));
        yield return ("valid-max-list", "k in (" + string.Join(",", Enumerable.Range(0, 16).Select(i => $"v{i}")) + ")");
        yield return ("terms-over-cap", string.Join(", ", Enumerable.Range(0, 33).Select(i => $"k{i}")));
        yield return ("list-over-cap", "k in (" + string.Join(",", Enumerable.Range(0, 17).Select(i => $"v{i}")) + ")");
        yield return ("weight-over-cap", "gpu:1001");
        yield return ("weight-huge", "gpu:99999999999999999999999");
        yield return ("length-over-cap", "k=" + new string('v', 1024));
        yield return ("bad-number", "cores>=four");
        yield return ("number-overflow", "cores>=1e400");
        yield return ("missing-value", "region=");
        yield return ("missing-weight", "gpu:");
        yield return ("trailing-comma", "gpu,");
        yield return ("double-comma", "a,,b");
        yield return ("unclosed-list", "k in (a, b");
        yield return ("empty-list", "k in ()");
        yield return ("bad-keyword", "k within (a)");
        yield return ("lone-bang", "!");
        yield return ("bang-equal-space", "k ! = v");
        yield return ("unicode", "région=é, zone=\u00e4");
        yield return ("sql-ish", "region='eu' OR 1=1; --");
        yield return ("control-chars", "k=\0v\t\r\n");
    }

    private static byte[] Proxy(ProxyHeader header)
    {
        var w = new ArrayBufferWriter<byte>();
        ProxyProtocolWriter.Write(w, header);
        return w.WrittenSpan.ToArray();
    }

    private static byte[] Encode<T>(ulong requestId, T message) where T : IFrameMessage<T>
    {
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.Write(w, requestId, message);
        return w.WrittenSpan.ToArray();
    }

    private static byte[] Raw(FrameType type, ulong requestId, ReadOnlySpan<byte> payload)
    {
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.WriteRaw(w, type, requestId, payload);
        return w.WrittenSpan.ToArray();
    }

    private static byte[] Header(ushort magic = FrameHeader.Magic, byte version = FrameHeader.CurrentVersion, byte type = 1, uint length = 0)
    {
        var b = new byte[FrameHeader.Size];
        BinaryPrimitives.WriteUInt16BigEndian(b, magic);
        b[2] = version;
        b[3] = type;
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(6), length);
        BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(10), 42);
        return b;
    }
}
