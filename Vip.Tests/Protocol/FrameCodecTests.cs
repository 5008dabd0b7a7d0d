using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using Vip.Protocol;

namespace Vip.Tests.Protocol;

public class FrameCodecTests
{
    private static readonly FrameReader Reader = new();

    private static Frame ParseOne(ReadOnlySequence<byte> seq)
    {
        var consumed = seq.Start;
        var examined = seq.End;
        Assert.That(Reader.TryParse(seq, ref consumed, ref examined, out var frame), Is.True, "a whole frame is present");
        Assert.That(consumed, Is.EqualTo(seq.End), "the whole frame is consumed");
        return frame;
    }

    private static T Decode<T>(byte[] bytes, FrameType type, ulong id) where T : IFrameMessage<T>
    {
        var frame = ParseOne(new ReadOnlySequence<byte>(bytes));
        Assert.That(frame.Type, Is.EqualTo(type));
        Assert.That(frame.RequestId, Is.EqualTo(id));
        return T.Read(frame.Payload.ToArray());
    }

    [Test]
    public void Task_round_trips_with_every_field()
    {
        var t = FrameSamples.Task;
        var back = Decode<TaskRequest>(FrameSamples.Encode(42, t), FrameType.Task, 42);
        Assert.That(back.ClientId, Is.EqualTo(t.ClientId));
        Assert.That(back.Kind, Is.EqualTo(t.Kind));
        Assert.That(back.Attributes, Is.EqualTo(t.Attributes));
        Assert.That(back.Requirement, Is.EqualTo(t.Requirement));
        Assert.That(back.Body.ToArray(), Is.EqualTo(t.Body.ToArray()));
    }

    [Test]
    public void Forward_round_trips_with_ipv4_and_ipv6_clients([Values("10.1.2.3", "2001:db8::7", "::ffff:192.0.2.1")] string address)
    {
        var client = WireEndpoint.From(IPAddress.Parse(address), 4242);
        var back = Decode<ForwardRequest>(FrameSamples.Encode(7, new ForwardRequest("t1", client, FrameSamples.Task)), FrameType.Forward, 7);
        Assert.That(back.Tier1Id, Is.EqualTo("t1"));
        Assert.That(back.Client, Is.EqualTo(client));
        Assert.That(back.Client.ToIPEndPoint().Address, Is.EqualTo(IPAddress.Parse(address).IsIPv4MappedToIPv6 ? IPAddress.Parse(address).MapToIPv4() : IPAddress.Parse(address)));
        Assert.That(back.Task.Requirement, Is.EqualTo(FrameSamples.Task.Requirement));
    }

    [Test]
    public void Forward_written_around_a_raw_task_payload_equals_the_record_encoding()
    {
        var taskBytes = FrameSamples.Encode(1, FrameSamples.Task);
        var client = WireEndpoint.From(IPAddress.Parse("10.0.0.1"), 9);
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.WriteForward(w, 5, "t1"u8, client, taskBytes.AsSpan(FrameHeader.Size));
        Assert.That(w.WrittenSpan.ToArray(), Is.EqualTo(FrameSamples.Encode(5, new ForwardRequest("t1", client, FrameSamples.Task))));
    }

    [Test]
    public void Redirect_round_trips_with_alternatives()
    {
        var r = new Redirect("app-1", WireEndpoint.From(IPAddress.Loopback, 7001), 123456789, new byte[] { 9, 8, 7 },
            [new RedirectAlternative("app-2", WireEndpoint.From(IPAddress.IPv6Loopback, 7002))]);
        var back = Decode<Redirect>(FrameSamples.Encode(3, r), FrameType.Redirect, 3);
        Assert.That(back.ServerId, Is.EqualTo("app-1"));
        Assert.That(back.Server, Is.EqualTo(r.Server));
        Assert.That(back.ExpiresUnixMs, Is.EqualTo(123456789));
        Assert.That(back.Ticket.ToArray(), Is.EqualTo(new byte[] { 9, 8, 7 }));
        Assert.That(back.Alternatives, Is.EqualTo(r.Alternatives));
    }

    [Test]
    public void Zero_alloc_redirect_writer_matches_the_record_encoding()
    {
        var server = WireEndpoint.From(IPAddress.Loopback, 7001);
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.WriteRedirect(w, 3, "app-1"u8, server, 5, new byte[] { 1, 2 });
        Assert.That(w.WrittenSpan.ToArray(), Is.EqualTo(FrameSamples.Encode(3, new Redirect("app-1", server, 5, new byte[] { 1, 2 }, []))));
    }

    [Test]
    public void Zero_alloc_expect_writer_matches_the_record_encoding()
    {
        var taskPayload = FrameSamples.Encode(1, FrameSamples.Task).AsSpan(FrameHeader.Size);
        var view = TaskView.Read(taskPayload);
        var client = WireEndpoint.From(IPAddress.Parse("127.0.0.5"), 0);
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.WriteExpect(w, 77, client, 1000, view.Kind, view.Attributes);
        Assert.That(w.WrittenSpan.ToArray(), Is.EqualTo(FrameSamples.Encode(0, new Expect(77, client, 1000, "sha256", FrameSamples.Attrs))));
    }

    [Test]
    public void Control_and_claim_frames_round_trip()
    {
        Assert.Multiple(() =>
        {
            var reg = Decode<Register>(FrameSamples.Encode(1, new Register("s", WireEndpoint.From(IPAddress.Loopback, 1), 8, FrameSamples.Attrs)), FrameType.Register, 1);
            Assert.That((reg.ServerId, reg.Capacity, reg.Attributes.Count), Is.EqualTo(("s", 8u, 3)));
            Assert.That(Decode<RegisterOk>(FrameSamples.Encode(1, new RegisterOk(1000, 3000)), FrameType.RegisterOk, 1), Is.EqualTo(new RegisterOk(1000, 3000)));
            Assert.That(Decode<Heartbeat>(FrameSamples.Encode(0, new Heartbeat("s", 999, 3, ServerState.Up)), FrameType.Heartbeat, 0), Is.EqualTo(new Heartbeat("s", 999, 3, ServerState.Up)));
            Assert.That(Decode<Deregister>(FrameSamples.Encode(2, new Deregister("s")), FrameType.Deregister, 2), Is.EqualTo(new Deregister("s")));
            var ex = Decode<Expect>(FrameSamples.Encode(0, new Expect(5, WireEndpoint.From(IPAddress.Loopback, 0), 9, "echo", [])), FrameType.Expect, 0);
            Assert.That((ex.TicketId, ex.Kind, ex.Attributes.Count), Is.EqualTo((5ul, "echo", 0)));
            Assert.That(Decode<Claim>(FrameSamples.Encode(4, new Claim(new byte[] { 1, 2, 3 })), FrameType.Claim, 4).Ticket.ToArray(), Is.EqualTo(new byte[] { 1, 2, 3 }));
            Assert.That(Decode<ClaimOk>(FrameSamples.Encode(4, new ClaimOk("s")), FrameType.ClaimOk, 4), Is.EqualTo(new ClaimOk("s")));
            Assert.That(Decode<ClaimDenied>(FrameSamples.Encode(4, new ClaimDenied(ClaimDenyReason.Expired, "late")), FrameType.ClaimDenied, 4), Is.EqualTo(new ClaimDenied(ClaimDenyReason.Expired, "late")));
            Assert.That(Decode<Reject>(FrameSamples.Encode(4, new Reject(RejectCode.Overloaded, 250, "full")), FrameType.Reject, 4), Is.EqualTo(new Reject(RejectCode.Overloaded, 250, "full")));
            Assert.That(Decode<TaskResult>(FrameSamples.Encode(4, new TaskResult(3, "x"u8.ToArray())), FrameType.Result, 4).Status, Is.EqualTo(3));
            Assert.That(Decode<Ping>(FrameSamples.Encode(4, new Ping("hi"u8.ToArray())), FrameType.Ping, 4).Data.ToArray(), Is.EqualTo("hi"u8.ToArray()));
            var admin = Decode<AdminRequest>(FrameSamples.Encode(4, new AdminRequest("tok", "clients", ["set", "c1", "pool=gold"])), FrameType.Admin, 4);
            Assert.That(admin.Args, Is.EqualTo(new[] { "set", "c1", "pool=gold" }));
            Assert.That(Decode<AdminResult>(FrameSamples.Encode(4, new AdminResult(0, "{}")), FrameType.AdminResult, 4), Is.EqualTo(new AdminResult(0, "{}")));
        });
    }

    [Test]
    public void Every_frame_parses_when_split_at_every_position()
    {
        foreach (var (name, bytes) in FrameSamples.All())
        {
            var whole = ParseOne(new ReadOnlySequence<byte>(bytes));
            for (var cut = 1; cut < bytes.Length; cut++)
            {
                // Fed incrementally: only the prefix first (must ask for more), then the whole buffer in two segments.
                var prefix = new ReadOnlySequence<byte>(bytes, 0, cut);
                var consumed = prefix.Start;
                var examined = prefix.End;
                Assert.That(Reader.TryParse(prefix, ref consumed, ref examined, out _), Is.False, $"{name}: {cut} bytes are not a frame");
                Assert.That(consumed, Is.EqualTo(prefix.Start), $"{name}: nothing consumed from a partial frame");

                var split = ParseOne(FrameSamples.Split(bytes, cut));
                Assert.That(split.Header, Is.EqualTo(whole.Header), $"{name} cut at {cut}");
                Assert.That(split.Payload.ToArray(), Is.EqualTo(whole.Payload.ToArray()), $"{name} cut at {cut}");
            }

            // Every byte its own segment.
            var shredded = ParseOne(FrameSamples.Split(bytes, Enumerable.Range(1, bytes.Length - 1).ToArray()));
            Assert.That(shredded.Payload.ToArray(), Is.EqualTo(whole.Payload.ToArray()), name);
            var scratch = new byte[bytes.Length];
            Assert.That(shredded.PayloadSpan(scratch).ToArray(), Is.EqualTo(whole.Payload.ToArray()), name);
        }
    }

    [Test]
    public void Several_frames_in_one_buffer_are_read_in_order()
    {
        var all = FrameSamples.All().ToList();
        var bytes = all.SelectMany(f => f.Bytes).ToArray();
        var seq = FrameSamples.Split(bytes, 7, 100, 101, 333);
        var consumed = seq.Start;
        var examined = seq.End;
        var types = new List<FrameType>();
        while (Reader.TryParse(seq, ref consumed, ref examined, out var f))
        {
            types.Add(f.Type);
        }

        Assert.That(types, Has.Count.EqualTo(all.Count));
        Assert.That(consumed, Is.EqualTo(seq.End));
    }

    private static VipProtocolException? ParseError(byte[] bytes)
    {
        var seq = new ReadOnlySequence<byte>(bytes);
        var consumed = seq.Start;
        var examined = seq.End;
        try
        {
            if (Reader.TryParse(seq, ref consumed, ref examined, out var frame))
            {
                DecodeByType(frame);
            }

            return null;
        }
        catch (VipProtocolException ex)
        {
            return ex;
        }
    }

    internal static void DecodeByType(in Frame frame)
    {
        var p = frame.Payload.ToArray();
        _ = frame.Type switch
        {
            FrameType.Task => (object)TaskRequest.Read(p),
            FrameType.Forward => ForwardRequest.Read(p),
            FrameType.Redirect => Redirect.Read(p),
            FrameType.Reject => Reject.Read(p),
            FrameType.Result => TaskResult.Read(p),
            FrameType.Register => Register.Read(p),
            FrameType.RegisterOk => RegisterOk.Read(p),
            FrameType.Heartbeat => Heartbeat.Read(p),
            FrameType.Deregister => Deregister.Read(p),
            FrameType.Expect => Expect.Read(p),
            FrameType.Claim => Claim.Read(p),
            FrameType.ClaimOk => ClaimOk.Read(p),
            FrameType.ClaimDenied => ClaimDenied.Read(p),
            FrameType.Ping or FrameType.Pong => Ping.Read(p),
            FrameType.Admin => AdminRequest.Read(p),
            FrameType.AdminResult => AdminResult.Read(p),
            _ => throw new InvalidOperationException("unhandled type " + frame.Type),
        };
    }

    private static byte[] Header(ushort magic = FrameHeader.Magic, byte version = 1, byte type = 1, uint length = 0, int extra = 0)
    {
        var b = new byte[FrameHeader.Size + extra];
        BinaryPrimitives.WriteUInt16BigEndian(b, magic);
        b[2] = version;
        b[3] = type;
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(6), length);
        return b;
    }

    [Test]
    public void Wrong_magic_is_rejected_before_anything_else()
        => Assert.That(ParseError(Header(magic: 0x4745))?.Error, Is.EqualTo(ProtocolError.BadMagic));

    [Test]
    public void Unknown_version_is_rejected() => Assert.That(ParseError(Header(version: 2))?.Error, Is.EqualTo(ProtocolError.UnsupportedVersion));

    [Test]
    public void Unknown_type_is_rejected([Values(0x00, 0x06, 0x0f, 0x15, 0x23, 0x32, 0x42, 0xff)] int type)
        => Assert.That(ParseError(Header(type: (byte)type))?.Error, Is.EqualTo(ProtocolError.UnknownType));

    [Test]
    public void Frame_with_length_over_cap_is_rejected_from_the_header_alone_without_waiting_for_the_payload()
    {
        // Only the 18 header bytes are present; the claimed 4 GiB payload is never waited for nor allocated.
        var error = ParseError(Header(length: uint.MaxValue));
        Assert.That(error?.Error, Is.EqualTo(ProtocolError.TooLarge));
        Assert.That(error!.RejectCode, Is.EqualTo(RejectCode.TooLarge));
        Assert.That(ParseError(Header(length: ProtocolLimits.DefaultMaxPayload + 1))?.Error, Is.EqualTo(ProtocolError.TooLarge));
    }

    [Test]
    public void Configured_cap_is_enforced()
    {
        var small = new FrameReader(new ProtocolLimits { MaxPayload = 1024 });
        var bytes = FrameSamples.Encode(1, new TaskRequest("c", "echo", [], "", new byte[2000]));
        var seq = new ReadOnlySequence<byte>(bytes);
        var consumed = seq.Start;
        var examined = seq.End;
        var ex = Assert.Throws<VipProtocolException>(() => small.TryParse(seq, ref consumed, ref examined, out _));
        Assert.That(ex!.Error, Is.EqualTo(ProtocolError.TooLarge));
    }

    [Test]
    public void Header_allocation_is_not_driven_by_the_claimed_length()
    {
        // A frame that claims the maximum payload but sends a few bytes is just incomplete: no exception, no buffer of that size.
        var bytes = Header(length: ProtocolLimits.DefaultMaxPayload, extra: 10);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var seq = new ReadOnlySequence<byte>(bytes);
        var consumed = seq.Start;
        var examined = seq.End;
        Assert.That(Reader.TryParse(seq, ref consumed, ref examined, out _), Is.False);
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.LessThan(1024));
    }

    [Test]
    public void Truncated_payload_fields_are_malformed()
    {
        var task = FrameSamples.Encode(1, FrameSamples.Task);
        var payload = task.AsSpan(FrameHeader.Size).ToArray();
        for (var n = 0; n < payload.Length; n++)
        {
            var ex = Assert.Throws<VipProtocolException>(() => TaskView.Read(payload.AsSpan(0, n)), $"prefix {n}");
            Assert.That(ex!.Error, Is.AnyOf(ProtocolError.Malformed, ProtocolError.TooLarge), $"prefix {n}");
        }
    }

    [Test]
    public void Trailing_bytes_after_the_last_field_are_malformed()
    {
        var payload = FrameSamples.Encode(1, new Deregister("s")).AsSpan(FrameHeader.Size).ToArray().Append((byte)0).ToArray();
        Assert.That(Assert.Throws<VipProtocolException>(() => Deregister.Read(payload))!.Error, Is.EqualTo(ProtocolError.Malformed));
    }

    [Test]
    public void Attribute_count_over_cap_is_rejected()
    {
        // clientId "c", kind "k", then attrs count 200.
        byte[] payload = [1, (byte)'c', 1, (byte)'k', 200];
        Assert.That(Assert.Throws<VipProtocolException>(() => TaskView.Read(payload))!.Error, Is.EqualTo(ProtocolError.TooLarge));
    }

    [Test]
    public void Duplicate_attribute_keys_are_malformed()
    {
        var payload = FrameSamples.Encode(1, new TaskRequest("c", "k", [new("a", "1"), new("a", "2")], "", default)).AsSpan(FrameHeader.Size).ToArray();
        Assert.That(Assert.Throws<VipProtocolException>(() => TaskView.Read(payload))!.Error, Is.EqualTo(ProtocolError.Malformed));
    }

    [Test]
    public void Invalid_utf8_is_rejected()
    {
        byte[] payload = [2, 0xC3, 0x28, 1, (byte)'k', 0, 0, 0, 0, 0, 0, 0];
        Assert.That(Assert.Throws<VipProtocolException>(() => TaskView.Read(payload))!.Error, Is.EqualTo(ProtocolError.InvalidUtf8));
    }

    [Test]
    public void Body_length_beyond_the_payload_is_malformed_not_an_allocation()
    {
        byte[] payload = [1, (byte)'c', 1, (byte)'k', 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
        Assert.That(Assert.Throws<VipProtocolException>(() => TaskView.Read(payload))!.Error, Is.EqualTo(ProtocolError.Malformed));
    }

    [Test]
    public void Unknown_address_family_is_malformed()
    {
        byte[] payload = [2, (byte)'t', (byte)'1', 5, 1, 2, 3, 4, 0, 1];
        Assert.That(Assert.Throws<VipProtocolException>(() => ForwardView.Read(payload))!.Error, Is.EqualTo(ProtocolError.Malformed));
    }

    [Test]
    public void Ticket_over_cap_is_rejected()
    {
        var payload = new byte[2 + 2000];
        BinaryPrimitives.WriteUInt16BigEndian(payload, 2000);
        Assert.That(Assert.Throws<VipProtocolException>(() => Claim.Read(payload))!.Error, Is.EqualTo(ProtocolError.TooLarge));
    }

    [Test]
    public void Datagram_must_hold_exactly_one_frame()
    {
        var bytes = FrameSamples.Encode(9, FrameSamples.Task);
        Assert.That(Reader.ParseDatagram(bytes, out var payload).RequestId, Is.EqualTo(9ul));
        Assert.That(payload.Length, Is.EqualTo(bytes.Length - FrameHeader.Size));
        Assert.That(Assert.Throws<VipProtocolException>(() => Reader.ParseDatagram(bytes.Append((byte)1).ToArray(), out _))!.Error, Is.EqualTo(ProtocolError.Malformed));
        Assert.That(Assert.Throws<VipProtocolException>(() => Reader.ParseDatagram(bytes.AsSpan(0, 30), out _))!.Error, Is.EqualTo(ProtocolError.Malformed));
    }
}
