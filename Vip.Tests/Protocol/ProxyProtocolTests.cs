using System.Buffers;
using System.Net;
using CsCheck;
using Vip.Protocol;

namespace Vip.Tests.Protocol;

public class ProxyProtocolTests
{
    private static readonly IPEndPoint Client4 = new(IPAddress.Parse("127.0.0.1"), 12345);
    private static readonly IPEndPoint Vip4 = new(IPAddress.Parse("127.0.0.2"), 80);
    private static readonly IPEndPoint Client6 = new(IPAddress.Parse("2001:db8::1"), 40000);
    private static readonly IPEndPoint Vip6 = new(IPAddress.Parse("2001:db8::ff"), 443);

    private static byte[] Encode(in ProxyHeader header)
    {
        var bytes = new byte[header.EncodedLength];
        Assert.That(ProxyProtocolWriter.Write(bytes, header), Is.EqualTo(bytes.Length));
        return bytes;
    }

    private static byte[] Hex(string s) => Convert.FromHexString(s.Replace(" ", "", StringComparison.Ordinal));

    private const string SignatureHex = "0D0A0D0A000D0A515549540A";

    [Test]
    public void Tcp_over_IPv4_is_written_byte_for_byte_as_the_specification_says()
    {
        var bytes = Encode(ProxyHeader.Create(ProxyTransport.Stream, Client4, Vip4));
        Assert.That(bytes, Is.EqualTo(Hex(SignatureHex + "21 11 000C 7F000001 7F000002 3039 0050")));
    }

    [Test]
    public void Local_is_sixteen_bytes_with_the_unspecified_family()
    {
        Assert.That(Encode(ProxyHeader.Local), Is.EqualTo(Hex(SignatureHex + "20 00 0000")));
    }

    [Test]
    public void Udp_over_IPv6_is_written_with_a_36_byte_address_block()
    {
        var bytes = Encode(ProxyHeader.Create(ProxyTransport.Datagram, Client6, Vip6));
        Assert.That(bytes, Has.Length.EqualTo(52));
        Assert.That(bytes[12..16], Is.EqualTo(Hex("21 22 0024")));
        Assert.That(bytes[48..52], Is.EqualTo(Hex("9C40 01BB")));
    }

    [TestCase(ProxyTransport.Stream, false)]
    [TestCase(ProxyTransport.Datagram, false)]
    [TestCase(ProxyTransport.Stream, true)]
    [TestCase(ProxyTransport.Datagram, true)]
    public void Headers_round_trip(ProxyTransport transport, bool ipv6)
    {
        var header = ipv6 ? ProxyHeader.Create(transport, Client6, Vip6) : ProxyHeader.Create(transport, Client4, Vip4);
        var bytes = Encode(header);
        var parsed = ParseAll(new ReadOnlySequence<byte>(bytes), out var consumedBytes);
        Assert.That(parsed, Is.EqualTo(header));
        Assert.That(consumedBytes, Is.EqualTo(bytes.Length));
        Assert.That(parsed.GetSourceEndPoint(), Is.EqualTo(ipv6 ? Client6 : Client4));
        Assert.That(parsed.GetDestinationEndPoint(), Is.EqualTo(ipv6 ? Vip6 : Vip4));
        Assert.That(parsed.Transport, Is.EqualTo(transport));
    }

    [Test]
    public void Local_round_trips_and_has_no_endpoints()
    {
        var parsed = ParseAll(new ReadOnlySequence<byte>(Encode(ProxyHeader.Local)), out var n);
        Assert.That(parsed.IsLocal, Is.True);
        Assert.That(n, Is.EqualTo(16));
        Assert.That(parsed.GetSourceEndPoint(), Is.Null);
    }

    [Test]
    public void Mixed_families_are_written_as_IPv6_and_read_back_as_the_same_endpoints()
    {
        var header = ProxyHeader.Create(ProxyTransport.Stream, Client4, Vip6);
        var bytes = Encode(header);
        Assert.That(bytes[13], Is.EqualTo(0x21));
        Assert.That(bytes[16..32], Is.EqualTo(IPAddress.Parse("::ffff:127.0.0.1").GetAddressBytes()));
        var parsed = ParseAll(new ReadOnlySequence<byte>(bytes), out _);
        Assert.That(parsed.GetSourceEndPoint(), Is.EqualTo(Client4));
        Assert.That(parsed.GetDestinationEndPoint(), Is.EqualTo(Vip6));
    }

    [Test]
    public void Buffer_writer_output_equals_span_output()
    {
        var header = ProxyHeader.Create(ProxyTransport.Stream, Client6, Vip4);
        var w = new ArrayBufferWriter<byte>();
        ProxyProtocolWriter.Write(w, header);
        Assert.That(w.WrittenSpan.ToArray(), Is.EqualTo(Encode(header)));
    }

    [Test]
    public void A_header_split_at_every_byte_is_parsed_and_every_prefix_asks_for_more()
    {
        var header = ProxyHeader.Create(ProxyTransport.Stream, Client6, Vip6);
        var bytes = Encode(header).Concat("payload"u8.ToArray()).ToArray();
        var headerLength = header.EncodedLength;
        for (var split = 1; split < bytes.Length; split++)
        {
            var seq = Segments.Split(bytes, split);
            Assert.That(ParseAll(seq, out var n), Is.EqualTo(header), $"split at {split}");
            Assert.That(n, Is.EqualTo(headerLength), $"split at {split}");
        }

        for (var prefix = 0; prefix < headerLength; prefix++)
        {
            var seq = Segments.Split(bytes[..prefix], prefix / 2);
            var consumed = seq.Start;
            var examined = seq.Start;
            Assert.That(ProxyProtocolReader.Default.TryParse(seq, ref consumed, ref examined, out _), Is.False, $"prefix {prefix}");
            Assert.That(consumed, Is.EqualTo(seq.Start));
            Assert.That(examined, Is.EqualTo(seq.End));
        }
    }

    [Test]
    public void A_header_in_one_byte_segments_is_parsed()
    {
        var header = ProxyHeader.Create(ProxyTransport.Datagram, Client4, Vip4);
        var bytes = Encode(header).Concat(new byte[] { 1, 2, 3 }).ToArray();
        var seq = Segments.OneByteEach(bytes);
        Assert.That(ParseAll(seq, out var n), Is.EqualTo(header));
        Assert.That(n, Is.EqualTo(header.EncodedLength));
    }

    [Test]
    public void Tlvs_after_the_address_block_are_skipped()
    {
        var bytes = Encode(ProxyHeader.Create(ProxyTransport.Stream, Client4, Vip4));
        byte[] tlv = [0x04, 0x00, 0x03, 0xAA, 0xBB, 0xCC]; // PP2_TYPE_NOOP with 3 bytes
        bytes[15] = (byte)(12 + tlv.Length);
        var all = bytes.Concat(tlv).Concat("X"u8.ToArray()).ToArray();
        for (var split = 1; split < all.Length; split++)
        {
            var parsed = ParseAll(Segments.Split(all, split), out var n);
            Assert.That(parsed.GetSourceEndPoint(), Is.EqualTo(Client4));
            Assert.That(n, Is.EqualTo(all.Length - 1));
        }
    }

    [Test]
    public void Local_with_an_address_block_is_accepted_and_the_block_ignored()
    {
        var bytes = Encode(ProxyHeader.Create(ProxyTransport.Stream, Client4, Vip4));
        bytes[12] = 0x20;
        var parsed = ParseAll(new ReadOnlySequence<byte>(bytes), out var n);
        Assert.That(parsed.IsLocal, Is.True);
        Assert.That(n, Is.EqualTo(28));
    }

    [Test]
    public void Random_endpoints_round_trip()
    {
        var genEndpoint = Gen.OneOf(
            Gen.Byte.Array[4].Select(a => new IPAddress(a)),
            Gen.Byte.Array[16].Select(a => new IPAddress(a)))
            .Select(Gen.Int[0, 65535], (a, p) => new IPEndPoint(a, p));
        Gen.Select(genEndpoint, genEndpoint, Gen.Bool).Sample((src, dst, udp) =>
        {
            var header = ProxyHeader.Create(udp ? ProxyTransport.Datagram : ProxyTransport.Stream, src, dst);
            var bytes = Encode(header);
            var parsed = ProxyProtocolReader.Default.ParseDatagram(bytes, out var n);
            return parsed == header && n == bytes.Length
                && parsed.GetSourceEndPoint()!.Equals(WireEndpoint.From(src).ToIPEndPoint())
                && parsed.GetDestinationEndPoint()!.Equals(WireEndpoint.From(dst).ToIPEndPoint());
        }, iter: 2000);
    }

    [Test]
    public void Parsing_a_header_allocates_nothing()
    {
        var bytes = Encode(ProxyHeader.Create(ProxyTransport.Stream, Client6, Vip6));
        var whole = new ReadOnlySequence<byte>(bytes);
        var split = Segments.Split(bytes, 20);
        var reader = ProxyProtocolReader.Default;
        _ = ParseAll(whole, out _);
        _ = ParseAll(split, out _);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            var c = whole.Start;
            var e = whole.Start;
            reader.TryParse(whole, ref c, ref e, out _);
            c = split.Start;
            e = split.Start;
            reader.TryParse(split, ref c, ref e, out _);
            reader.ParseDatagram(bytes, out _);
        }

        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }

    [Test]
    public void Datagram_payload_starts_after_the_header()
    {
        var header = ProxyHeader.Create(ProxyTransport.Datagram, Client4, Vip4);
        var datagram = Encode(header).Concat("ping"u8.ToArray()).ToArray();
        var parsed = ProxyProtocolReader.Default.ParseDatagram(datagram, out var n);
        Assert.That(parsed, Is.EqualTo(header));
        Assert.That(datagram[n..], Is.EqualTo("ping"u8.ToArray()));
    }

    // ---- hostile input ----

    [Test]
    public void A_wrong_first_byte_is_rejected_at_once()
    {
        var ex = Assert.Throws<VipProtocolException>(() => TryParse([(byte)'G']));
        Assert.That(ex!.Error, Is.EqualTo(ProtocolError.BadProxyHeader));
    }

    [Test]
    public void A_PROXY_v1_text_header_is_rejected()
    {
        var ex = Assert.Throws<VipProtocolException>(() => TryParse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"u8.ToArray()));
        Assert.That(ex!.Error, Is.EqualTo(ProtocolError.BadProxyHeader));
    }

    [TestCase("11 11", TestName = "Version_1_in_the_binary_format_is_rejected")]
    [TestCase("31 11", TestName = "Version_3_is_rejected")]
    [TestCase("22 11", TestName = "An_unknown_command_is_rejected")]
    [TestCase("21 41", TestName = "An_unknown_family_is_rejected")]
    [TestCase("21 13", TestName = "An_unknown_transport_is_rejected")]
    [TestCase("21 00", TestName = "PROXY_with_the_unspecified_family_is_rejected")]
    [TestCase("21 31", TestName = "PROXY_over_a_unix_socket_family_is_rejected")]
    [TestCase("21 10", TestName = "PROXY_with_an_unspecified_transport_is_rejected")]
    [TestCase("20 41", TestName = "LOCAL_with_an_invalid_family_is_rejected")]
    public void Invalid_version_command_or_family_is_rejected_before_the_length_arrives(string bytes1213)
    {
        // Only 14 bytes: the reader must not wait for the length or the addresses to say no.
        var ex = Assert.Throws<VipProtocolException>(() => TryParse(Hex(SignatureHex + bytes1213)));
        Assert.That(ex!.Error, Is.EqualTo(ProtocolError.BadProxyHeader));
    }

    [Test]
    public void A_length_over_the_cap_is_rejected_before_the_header_is_buffered()
    {
        var ex = Assert.Throws<VipProtocolException>(() => TryParse(Hex(SignatureHex + "21 11 0201")));
        Assert.That(ex!.Error, Is.EqualTo(ProtocolError.TooLarge));
        ex = Assert.Throws<VipProtocolException>(() => TryParse(Hex(SignatureHex + "21 11 FFFF")));
        Assert.That(ex!.Error, Is.EqualTo(ProtocolError.TooLarge));
    }

    [Test]
    public void The_cap_is_configurable()
    {
        var reader = new ProxyProtocolReader(maxLength: 40);
        var bytes = Hex(SignatureHex + "21 11 0029");
        var seq = new ReadOnlySequence<byte>(bytes);
        var c = seq.Start;
        var e = seq.Start;
        Assert.Throws<VipProtocolException>(() => reader.TryParse(seq, ref c, ref e, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new ProxyProtocolReader(35));
    }

    [TestCase("21 11 000B", TestName = "An_IPv4_header_shorter_than_its_address_block_is_rejected")]
    [TestCase("21 21 0023", TestName = "An_IPv6_header_shorter_than_its_address_block_is_rejected")]
    public void Short_address_blocks_are_rejected(string rest)
    {
        var ex = Assert.Throws<VipProtocolException>(() => TryParse(Hex(SignatureHex + rest)));
        Assert.That(ex!.Error, Is.EqualTo(ProtocolError.BadProxyHeader));
    }

    [Test]
    public void A_truncated_datagram_header_is_rejected()
    {
        var bytes = Encode(ProxyHeader.Create(ProxyTransport.Datagram, Client4, Vip4));
        for (var n = 0; n < bytes.Length; n++)
        {
            Assert.Throws<VipProtocolException>(() => ProxyProtocolReader.Default.ParseDatagram(bytes.AsSpan(0, n), out _), $"length {n}");
        }
    }

    [Test]
    public void Random_garbage_never_throws_anything_but_a_protocol_error()
    {
        Gen.Byte.Array[0, 80].Sample(bytes =>
        {
            // Half the samples start with the signature, so the later checks get exercised too.
            var input = bytes.Length > 0 && bytes[0] % 2 == 0 ? Hex(SignatureHex).Concat(bytes).ToArray() : bytes;
            try
            {
                TryParse(input);
            }
            catch (VipProtocolException)
            {
            }
        }, iter: 5000);
    }

    [Test]
    public void Writing_a_proxy_header_without_addresses_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ProxyHeader.Create(ProxyTransport.Unspecified, Client4, Vip4));
        Assert.Throws<ArgumentException>(() => ProxyHeader.Create(ProxyTransport.Stream, default(WireEndpoint), WireEndpoint.From(Vip4)));
        Assert.Throws<ArgumentException>(() => ProxyProtocolWriter.Write(new byte[27], ProxyHeader.Create(ProxyTransport.Stream, Client4, Vip4)));
    }

    private static bool TryParse(byte[] bytes)
    {
        var seq = new ReadOnlySequence<byte>(bytes);
        var consumed = seq.Start;
        var examined = seq.Start;
        return ProxyProtocolReader.Default.TryParse(seq, ref consumed, ref examined, out _);
    }

    private static ProxyHeader ParseAll(ReadOnlySequence<byte> seq, out long consumedBytes)
    {
        var consumed = seq.Start;
        var examined = seq.Start;
        Assert.That(ProxyProtocolReader.Default.TryParse(seq, ref consumed, ref examined, out var header), Is.True);
        Assert.That(examined, Is.EqualTo(consumed));
        consumedBytes = seq.Slice(seq.Start, consumed).Length;
        return header;
    }

    /// <summary>Builds multi-segment sequences so parsers see headers cut at awkward places.</summary>
    private sealed class Segments : ReadOnlySequenceSegment<byte>
    {
        private Segments(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        private Segments Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segments(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }

        public static ReadOnlySequence<byte> Split(byte[] bytes, int at)
        {
            var first = new Segments(bytes.AsMemory(0, at), 0);
            var last = first.Append(bytes.AsMemory(at));
            return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
        }

        public static ReadOnlySequence<byte> OneByteEach(byte[] bytes)
        {
            var first = new Segments(bytes.AsMemory(0, 1), 0);
            var last = first;
            for (var i = 1; i < bytes.Length; i++)
            {
                last = last.Append(bytes.AsMemory(i, 1));
            }

            return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
        }
    }
}
