using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Vip.Dispatch.Tier1;
using Vip.Protocol;
using Vip.Tests.Client;

namespace Vip.Tests.Dispatch.Tier1;

[Parallelizable(ParallelScope.All)]
public class Tier1ServerTests
{
    private static readonly IPAddress ClientAddress = IPAddress.Parse("127.0.0.2");
    private static readonly IPAddress VipAddress = IPAddress.Parse("127.0.0.3");

    internal static async Task<Tier1Server> StartTier1Async(IEnumerable<FakeTier2> tier2s, Action<Tier1Options>? configure = null, bool waitForLinks = true)
    {
        var options = new Tier1Options { Id = "t1-test", Listen = new IPEndPoint(IPAddress.Loopback, 0), RequestTimeout = TimeSpan.FromMilliseconds(500), PingInterval = TimeSpan.FromMilliseconds(100), ReconnectMinDelay = TimeSpan.FromMilliseconds(20), ReconnectMaxDelay = TimeSpan.FromMilliseconds(200), DrainTimeout = TimeSpan.FromMilliseconds(200) };
        foreach (var t in tier2s)
        {
            options.Tier2.Add(t.EndPoint);
        }

        configure?.Invoke(options);
        var server = new Tier1Server(options);
        await server.StartAsync(CancellationToken.None);
        if (waitForLinks)
        {
            Assert.That(await Tasks.WaitUntilAsync(() => server.GetTier2Status().All(s => s.Available)), Is.True, "tier-2 links did not come up");
        }

        return server;
    }

    [Test]
    public async Task Task_is_forwarded_with_the_client_address_and_the_redirect_comes_back_byte_for_byte()
    {
        await using var t2 = new FakeTier2("a");
        await using var tier1 = await StartTier1Async([t2]);
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint, ClientAddress);

        await client.SendTaskAsync(4242, Tasks.Make("alice", "sha256", "cpu>=4", "body", ("gpu", "yes")));
        var answer = await client.ReadAsync();

        Assert.That(answer, Is.Not.Null);
        Assert.That(answer!.Value.Header.Type, Is.EqualTo(FrameType.Redirect));
        Assert.That(answer.Value.Header.RequestId, Is.EqualTo(4242UL));
        Assert.That(t2.Received.TryPeek(out var forward), Is.True);
        Assert.That(forward!.Tier1Id, Is.EqualTo("t1-test"));
        Assert.That(forward.Client, Is.EqualTo(WireEndpoint.From(client.LocalEndPoint)));
        Assert.That(forward.Task.Requirement, Is.EqualTo("cpu>=4"));
        Assert.That(forward.Task.Attributes.Single(), Is.EqualTo(KeyValuePair.Create("gpu", "yes")));
        var expected = RawFrameClient.Frame(0, (Redirect)t2.Answers.Single());
        Assert.That(answer.Value.Payload, Is.EqualTo(expected[FrameHeader.Size..]), "the payload is relayed unchanged");
        Assert.That(t2.ReceivedIds.Single(), Is.Not.EqualTo(4242UL), "request ids are rewritten on the tier-2 link");
    }

    [Test]
    public async Task Many_pipelined_tasks_on_one_connection_are_each_answered_by_their_request_id()
    {
        await using var t2 = new FakeTier2("a");
        await using var tier1 = await StartTier1Async([t2]);
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint);
        const int n = 500;
        var bytes = Enumerable.Range(0, n).SelectMany(i => RawFrameClient.Frame((ulong)(1000 + i), Tasks.Make($"c{i}", body: i.ToString(System.Globalization.CultureInfo.InvariantCulture)))).ToArray();

        await client.SendAsync(bytes);
        var seen = new HashSet<ulong>();
        for (var i = 0; i < n; i++)
        {
            var answer = await client.ReadAsync();
            Assert.That(answer?.Header.Type, Is.EqualTo(FrameType.Redirect));
            var ticket = Encoding.UTF8.GetString(Redirect.Read(answer!.Value.Payload).Ticket.Span);
            Assert.That(ticket, Does.StartWith($"a|c{answer.Value.Header.RequestId - 1000}|"), "each answer carries its own request id");
            seen.Add(answer.Value.Header.RequestId);
        }

        Assert.That(seen, Has.Count.EqualTo(n));
    }

    [Test]
    public async Task The_same_client_always_lands_on_the_same_tier2_and_clients_spread_over_all()
    {
        await using var a = new FakeTier2("a");
        await using var b = new FakeTier2("b");
        await using var tier1 = await StartTier1Async([a, b]);
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint);

        var byClient = new Dictionary<string, HashSet<string>>();
        for (var round = 0; round < 3; round++)
        {
            for (var c = 0; c < 40; c++)
            {
                await client.SendTaskAsync((ulong)(round * 100 + c), Tasks.Make($"client-{c}"));
                var answer = await client.ReadAsync();
                var server = Redirect.Read(answer!.Value.Payload).ServerId;
                (byClient.TryGetValue($"client-{c}", out var set) ? set : byClient[$"client-{c}"] = []).Add(server);
            }
        }

        Assert.That(byClient.Values.All(s => s.Count == 1), Is.True, "a client's tasks all went to one tier-2");
        Assert.That(byClient.Values.SelectMany(s => s).Distinct().Count(), Is.EqualTo(2), "clients are spread over both tier-2s");
    }

    [Test]
    public async Task Round_robin_alternates_between_tier2_daemons()
    {
        await using var a = new FakeTier2("a");
        await using var b = new FakeTier2("b");
        await using var tier1 = await StartTier1Async([a, b], o => o.Tier2Choice = Tier2Choice.RoundRobin);
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint);

        var servers = new List<string>();
        for (var i = 0; i < 10; i++)
        {
            await client.SendTaskAsync((ulong)i, Tasks.Make("same-client"));
            servers.Add(Redirect.Read((await client.ReadAsync())!.Value.Payload).ServerId);
        }

        Assert.That(servers.Count(s => s == "a"), Is.EqualTo(5));
        Assert.That(servers.Zip(servers.Skip(1)).All(p => p.First != p.Second), Is.True, string.Join(",", servers));
    }

    [Test]
    public async Task Reject_unavailable_from_a_tier2_sends_the_forward_to_the_next_one()
    {
        await using var a = new FakeTier2("a") { Behavior = _ => new Reject(RejectCode.Unavailable, 100, "no app link") };
        await using var b = new FakeTier2("b") { Behavior = _ => new Reject(RejectCode.Unavailable, 100, "no app link") };
        await using var tier1 = await StartTier1Async([a, b]);
        a.Behavior = a.DefaultRedirect;
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint);

        for (var i = 0; i < 20; i++)
        {
            await client.SendTaskAsync((ulong)i, Tasks.Make($"c{i}"));
            var answer = await client.ReadAsync();
            Assert.That(answer!.Value.Header.Type, Is.EqualTo(FrameType.Redirect));
            Assert.That(Redirect.Read(answer.Value.Payload).ServerId, Is.EqualTo("a"));
        }

        Assert.That(b.Received, Is.Not.Empty, "some clients hash to b first and were failed over to a");
    }

    [Test]
    public async Task Other_rejections_are_relayed_without_failover()
    {
        await using var a = new FakeTier2("a") { Behavior = _ => new Reject(RejectCode.NoMatchingServer, 250, "nothing has gpu=yes") };
        await using var b = new FakeTier2("b") { Behavior = _ => new Reject(RejectCode.NoMatchingServer, 250, "nothing has gpu=yes") };
        await using var tier1 = await StartTier1Async([a, b]);
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint);

        await client.SendTaskAsync(7, Tasks.Make());
        var answer = await client.ReadAsync();

        Assert.That(answer!.Value.Header.Type, Is.EqualTo(FrameType.Reject));
        Assert.That(Reject.Read(answer.Value.Payload), Is.EqualTo(new Reject(RejectCode.NoMatchingServer, 250, "nothing has gpu=yes")));
        Assert.That(a.Received.Count + b.Received.Count, Is.EqualTo(1));
    }

    [Test]
    public async Task A_dead_tier2_is_skipped_and_its_clients_go_to_the_other()
    {
        var a = new FakeTier2("a");
        await using var b = new FakeTier2("b");
        await using var tier1 = await StartTier1Async([a, b]);
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint);
        await a.DisposeAsync();
        Assert.That(await Tasks.WaitUntilAsync(() => !tier1.GetTier2Status()[0].Connected), Is.True);

        for (var i = 0; i < 30; i++)
        {
            await client.SendTaskAsync((ulong)i, Tasks.Make($"c{i}"));
            var answer = await client.ReadAsync();
            Assert.That(Redirect.Read(answer!.Value.Payload).ServerId, Is.EqualTo("b"));
        }
    }

    [Test]
    public async Task A_tier2_that_does_not_answer_times_out_and_the_next_one_answers()
    {
        await using var a = new FakeTier2("a") { Behavior = _ => null };
        await using var b = new FakeTier2("b");
        await using var tier1 = await StartTier1Async([a, b], o => o.RequestTimeout = TimeSpan.FromMilliseconds(200));
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint);

        await client.SendTaskAsync(1, Tasks.Make("x"));
        await client.SendTaskAsync(2, Tasks.Make("y"));
        await client.SendTaskAsync(3, Tasks.Make("z"));
        for (var i = 0; i < 3; i++)
        {
            var answer = await client.ReadAsync();
            Assert.That(answer!.Value.Header.Type, Is.EqualTo(FrameType.Redirect));
            Assert.That(Redirect.Read(answer.Value.Payload).ServerId, Is.EqualTo("b"));
        }
    }

    [Test]
    public async Task When_no_tier2_answers_in_time_the_client_gets_reject_timeout()
    {
        await using var a = new FakeTier2("a") { Behavior = _ => null };
        await using var tier1 = await StartTier1Async([a], o => o.RequestTimeout = TimeSpan.FromMilliseconds(150));
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint);

        await client.SendTaskAsync(9, Tasks.Make());
        var answer = await client.ReadAsync();

        Assert.That(answer!.Value.Header.RequestId, Is.EqualTo(9UL));
        var reject = Reject.Read(answer.Value.Payload);
        Assert.That(reject.Code, Is.EqualTo(RejectCode.Timeout));
        Assert.That(reject.RetryAfterMs, Is.GreaterThan(0u));
    }

    [Test]
    public async Task With_no_tier2_up_the_client_gets_reject_unavailable_with_retry_after()
    {
        var a = new FakeTier2("a");
        var dead = a.EndPoint;
        await a.DisposeAsync();
        var options = new Tier1Options { Listen = new IPEndPoint(IPAddress.Loopback, 0) };
        options.Tier2.Add(dead);
        await using var tier1 = new Tier1Server(options);
        await tier1.StartAsync(CancellationToken.None);
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint);

        await client.SendTaskAsync(5, Tasks.Make());
        var answer = await client.ReadAsync();

        var reject = Reject.Read(answer!.Value.Payload);
        Assert.That(reject.Code, Is.EqualTo(RejectCode.Unavailable));
        Assert.That(reject.RetryAfterMs, Is.EqualTo(options.UnavailableRetryAfterMs));
    }

    [Test]
    public async Task Tasks_over_the_in_flight_limit_are_rejected_with_too_many_in_flight()
    {
        await using var a = new FakeTier2("a") { Behavior = _ => null };
        await using var tier1 = await StartTier1Async([a], o => { o.MaxInFlightPerConnection = 3; o.RequestTimeout = TimeSpan.FromSeconds(30); });
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint);

        for (ulong i = 1; i <= 5; i++)
        {
            await client.SendTaskAsync(i, Tasks.Make());
        }

        var first = await client.ReadAsync();
        var second = await client.ReadAsync();
        Assert.That(new[] { first!.Value.Header.RequestId, second!.Value.Header.RequestId }, Is.EquivalentTo(new[] { 4UL, 5UL }));
        Assert.That(Reject.Read(first.Value.Payload).Code, Is.EqualTo(RejectCode.TooManyInFlight));
        Assert.That(a.Received, Has.Count.EqualTo(3));
    }

    [Test]
    public async Task Ping_is_answered_with_pong_carrying_the_same_bytes()
    {
        await using var a = new FakeTier2("a");
        await using var tier1 = await StartTier1Async([a]);
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint);

        await client.SendAsync(RawFrameClient.Frame(77, new Ping(new byte[] { 1, 2, 3 })));
        var answer = await client.ReadAsync();

        Assert.That(answer!.Value.Header.Type, Is.EqualTo(FrameType.Pong));
        Assert.That(answer.Value.Header.RequestId, Is.EqualTo(77UL));
        Assert.That(answer.Value.Payload, Is.EqualTo(new byte[] { 1, 2, 3 }));
    }

    [Test]
    public async Task A_malformed_task_is_rejected_as_malformed_and_the_connection_closed()
    {
        await using var a = new FakeTier2("a");
        await using var tier1 = await StartTier1Async([a]);
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint);
        var frame = new byte[FrameHeader.Size + 3];
        new FrameHeader(FrameType.Task, 0, 3, 11).WriteTo(frame);

        await client.SendAsync(frame);
        var answer = await client.ReadAsync();

        Assert.That(answer!.Value.Header.RequestId, Is.EqualTo(11UL));
        Assert.That(Reject.Read(answer.Value.Payload).Code, Is.EqualTo(RejectCode.Malformed));
        Assert.That(await client.ReadAsync(), Is.Null, "the connection is closed");
        Assert.That(a.Received, Is.Empty);
    }

    [Test]
    public async Task A_payload_over_the_cap_is_rejected_as_too_large_before_it_arrives()
    {
        await using var a = new FakeTier2("a");
        await using var tier1 = await StartTier1Async([a], o => o.Limits = new ProtocolLimits { MaxPayload = 1024 });
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint);
        var header = new byte[FrameHeader.Size];
        new FrameHeader(FrameType.Task, 0, 1_000_000, 12).WriteTo(header);

        await client.SendAsync(header);
        var answer = await client.ReadAsync();

        Assert.That(answer!.Value.Header.RequestId, Is.EqualTo(12UL));
        Assert.That(Reject.Read(answer.Value.Payload).Code, Is.EqualTo(RejectCode.TooLarge));
        Assert.That(await client.ReadAsync(), Is.Null);
    }

    [Test]
    public async Task From_a_trusted_proxy_the_proxy_header_gives_the_client_address()
    {
        await using var a = new FakeTier2("a");
        await using var tier1 = await StartTier1Async([a], o => o.TrustedProxies.Add(IPNetwork.Parse("127.0.0.3/32")));
        await using var vip = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint, VipAddress);
        var realClient = new IPEndPoint(IPAddress.Parse("192.0.2.10"), 40001);

        await vip.SendAsync([.. ProxyV2(realClient, tier1.LocalEndPoint), .. RawFrameClient.Frame(1, Tasks.Make())]);
        var answer = await vip.ReadAsync();

        Assert.That(answer!.Value.Header.Type, Is.EqualTo(FrameType.Redirect));
        Assert.That(a.Received.Single().Client, Is.EqualTo(WireEndpoint.From(realClient)));
    }

    [Test]
    public async Task A_trusted_proxy_without_a_header_is_disconnected_and_nothing_is_forwarded()
    {
        await using var a = new FakeTier2("a");
        await using var tier1 = await StartTier1Async([a], o => o.TrustedProxies.Add(IPNetwork.Parse("127.0.0.3/32")));
        await using var vip = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint, VipAddress);

        await vip.SendAsync(RawFrameClient.Frame(1, Tasks.Make()));

        Assert.That(await vip.ReadAsync(), Is.Null);
        Assert.That(a.Received, Is.Empty);
    }

    [Test]
    public async Task A_proxy_header_from_an_untrusted_peer_is_not_believed()
    {
        await using var a = new FakeTier2("a");
        await using var tier1 = await StartTier1Async([a], o => o.TrustedProxies.Add(IPNetwork.Parse("127.0.0.3/32")));
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint, ClientAddress);

        await client.SendAsync([.. ProxyV2(new IPEndPoint(IPAddress.Parse("192.0.2.10"), 1), tier1.LocalEndPoint), .. RawFrameClient.Frame(1, Tasks.Make())]);

        Assert.That(await client.ReadAsync(), Is.Null, "the header is not a frame: bad magic, closed");
        Assert.That(a.Received, Is.Empty);
    }

    [Test]
    public async Task A_proxy_local_header_is_a_health_check_answered_with_pong()
    {
        await using var a = new FakeTier2("a");
        await using var tier1 = await StartTier1Async([a], o => o.TrustedProxies.Add(IPNetwork.Parse("127.0.0.3/32")));
        await using var vip = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint, VipAddress);
        byte[] local = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00];

        await vip.SendAsync([.. local, .. RawFrameClient.Frame(3, new Ping(Array.Empty<byte>()))]);

        Assert.That((await vip.ReadAsync())!.Value.Header.Type, Is.EqualTo(FrameType.Pong));
    }

    [Test]
    public async Task A_udp_datagram_task_is_answered_with_one_datagram()
    {
        await using var a = new FakeTier2("a");
        await using var tier1 = await StartTier1Async([a], o => o.UdpListen = new IPEndPoint(IPAddress.Loopback, 0));
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(ClientAddress, 0));

        await udp.SendToAsync(RawFrameClient.Frame(31, Tasks.Make("udp-client")), SocketFlags.None, tier1.UdpLocalEndPoint!);
        var buffer = new byte[65536];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var n = await udp.ReceiveAsync(buffer, SocketFlags.None, cts.Token);

        var header = new FrameReader().ParseDatagram(buffer.AsSpan(0, n), out var payload);
        Assert.That(header.Type, Is.EqualTo(FrameType.Redirect));
        Assert.That(header.RequestId, Is.EqualTo(31UL));
        Assert.That(Redirect.Read(payload).ServerId, Is.EqualTo("a"));
        Assert.That(a.Received.Single().Client, Is.EqualTo(WireEndpoint.From((IPEndPoint)udp.LocalEndPoint!)));
    }

    [Test]
    public async Task A_udp_datagram_from_a_trusted_proxy_carries_the_client_address_in_its_header()
    {
        await using var a = new FakeTier2("a");
        await using var tier1 = await StartTier1Async([a], o => { o.UdpListen = new IPEndPoint(IPAddress.Loopback, 0); o.TrustedProxies.Add(IPNetwork.Parse("127.0.0.3/32")); });
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(VipAddress, 0));
        var realClient = new IPEndPoint(IPAddress.Parse("198.51.100.7"), 5353);

        await udp.SendToAsync(ProxyV2(realClient, tier1.UdpLocalEndPoint!, udp: true).Concat(RawFrameClient.Frame(32, Tasks.Make())).ToArray(), SocketFlags.None, tier1.UdpLocalEndPoint!);
        var buffer = new byte[65536];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var n = await udp.ReceiveAsync(buffer, SocketFlags.None, cts.Token);

        Assert.That(new FrameReader().ParseDatagram(buffer.AsSpan(0, n), out _).RequestId, Is.EqualTo(32UL));
        Assert.That(a.Received.Single().Client, Is.EqualTo(WireEndpoint.From(realClient)));
    }

    [Test]
    public async Task Tasks_in_flight_on_a_tier2_that_drops_its_connection_are_failed_over()
    {
        await using var a = new FakeTier2("a") { Behavior = _ => null };
        await using var b = new FakeTier2("b");
        await using var tier1 = await StartTier1Async([a, b], o => { o.Tier2Choice = Tier2Choice.RoundRobin; o.RequestTimeout = TimeSpan.FromSeconds(30); });
        await using var client = await RawFrameClient.ConnectAsync(tier1.LocalEndPoint);
        for (ulong i = 1; i <= 10; i++)
        {
            await client.SendTaskAsync(i, Tasks.Make());
        }

        Assert.That(await Tasks.WaitUntilAsync(() => a.Received.Count + b.Received.Count >= 10), Is.True);
        var stuckOnA = a.Received.Count;
        tier1.DisconnectTier2(0);

        var ids = new HashSet<ulong>();
        for (var i = 0; i < 10; i++)
        {
            var answer = await client.ReadAsync();
            Assert.That(answer!.Value.Header.Type, Is.EqualTo(FrameType.Redirect));
            ids.Add(answer.Value.Header.RequestId);
        }

        Assert.That(stuckOnA, Is.GreaterThan(0));
        Assert.That(ids, Has.Count.EqualTo(10));
    }

    [Test]
    public async Task Tier2_links_are_health_checked_with_ping_and_a_silent_one_leaves_rotation()
    {
        await using var a = new FakeTier2("a");
        await using var b = new FakeTier2("b");
        await using var tier1 = await StartTier1Async([a, b], o => { o.PingInterval = TimeSpan.FromMilliseconds(50); o.PingTimeout = TimeSpan.FromMilliseconds(300); });
        Assert.That(await Tasks.WaitUntilAsync(() => a.Pings > 2 && b.Pings > 2), Is.True);

        a.AnswerPings = false;

        Assert.That(await Tasks.WaitUntilAsync(() => !tier1.GetTier2Status()[0].Available), Is.True);
        Assert.That(tier1.GetTier2Status()[1].Available, Is.True);
        a.AnswerPings = true;
        Assert.That(await Tasks.WaitUntilAsync(() => tier1.GetTier2Status()[0].Available), Is.True, "it comes back with its next PONG");
    }

    [Test]
    public void Invalid_options_are_refused_with_the_setting_named()
    {
        var options = new Tier1Options { Listen = new IPEndPoint(IPAddress.Loopback, 0) };
        Assert.That(() => new Tier1Server(options), Throws.ArgumentException.With.Message.Contains("Tier2"));
        options.Tier2.Add(new IPEndPoint(IPAddress.Loopback, 1));
        options.MaxInFlightPerConnection = 0;
        Assert.That(() => new Tier1Server(options), Throws.ArgumentException.With.Message.Contains("MaxInFlightPerConnection"));
    }

    internal static byte[] ProxyV2(IPEndPoint source, IPEndPoint destination, bool udp = false)
    {
        var h = new byte[16 + 12];
        byte[] sig = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
        sig.CopyTo(h, 0);
        h[12] = 0x21;
        h[13] = udp ? (byte)0x12 : (byte)0x11;
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(14), 12);
        source.Address.GetAddressBytes().CopyTo(h, 16);
        destination.Address.GetAddressBytes().CopyTo(h, 20);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(24), (ushort)source.Port);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(26), (ushort)destination.Port);
        return h;
    }
}
