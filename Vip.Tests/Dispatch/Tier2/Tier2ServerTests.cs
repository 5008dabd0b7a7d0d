using System.Net;
using System.Text;
using Vip.Agent;
using Vip.Dispatch.Tier2;
using Vip.Protocol;
using Vip.Selection;
using Vip.Store;
using Vip.Tests.Agent;
using Vip.Tickets;

namespace Vip.Tests.Dispatch.Tier2;

public class Tier2ServerTests
{
    private static readonly IPEndPoint ServiceA = new(IPAddress.Parse("127.0.0.21"), 5001);
    private static readonly IPEndPoint ServiceB = new(IPAddress.Parse("127.0.0.22"), 5002);
    private Tier2Fixture _fixture = null!;

    [SetUp]
    public void SetUp() => _fixture = new Tier2Fixture();

    [TearDown]
    public async Task TearDown() => await _fixture.DisposeAsync();

    private static Redirect ForwardExpectingRedirect(RawPeer tier1, ForwardRequest forward, ulong id = 9)
    {
        tier1.Send(id, forward);
        var answer = tier1.Receive()!;
        Assert.That(answer.Type, Is.EqualTo(FrameType.Redirect), () => answer.Type == FrameType.Reject ? Reject.Read(answer.Payload).ToString() : "");
        Assert.That(answer.RequestId, Is.EqualTo(id));
        return Redirect.Read(answer.Payload);
    }

    private static Reject ForwardExpectingReject(RawPeer tier1, ForwardRequest forward, ulong id = 9)
    {
        tier1.Send(id, forward);
        var answer = tier1.Receive()!;
        Assert.That(answer.Type, Is.EqualTo(FrameType.Reject));
        Assert.That(answer.RequestId, Is.EqualTo(id));
        return Reject.Read(answer.Payload);
    }

    [Test]
    public async Task Expect_reaches_the_app_server_before_the_redirect_reaches_the_requester()
    {
        var tier2 = await _fixture.StartAsync();
        using var app = RawAppServer.Register(tier2, "a", ServiceA);
        app.Heartbeat("a");
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);
        using var verifier = new TicketVerifier(_fixture.Keys, new TicketVerifierOptions { ServerId = "a" });

        for (var i = 0; i < 20; i++)
        {
            var redirect = ForwardExpectingRedirect(tier1, Forwarding.Task("c1", kind: "primes", attrs: ("n", "7")), (ulong)(100 + i));

            // The EXPECT was handed to the kernel before the REDIRECT was written: it is already waiting.
            Assert.That(app.HasDataNow, Is.True, $"round {i}: the EXPECT is not there when the REDIRECT arrives");
            var expect = Expect.Read(app.Receive(FrameType.Expect).Payload);
            Assert.Multiple(() =>
            {
                Assert.That(redirect.ServerId, Is.EqualTo("a"));
                Assert.That(redirect.Server.ToIPEndPoint(), Is.EqualTo(ServiceA));
                Assert.That(expect.TicketId, Is.EqualTo(Forwarding.TicketId(redirect.Ticket)));
                Assert.That(expect.Client, Is.EqualTo(WireEndpoint.From(IPAddress.Loopback, 40000)));
                Assert.That(expect.ExpiresUnixMs, Is.EqualTo(redirect.ExpiresUnixMs));
                Assert.That(expect.Kind, Is.EqualTo("primes"));
                Assert.That(expect.Attributes, Is.EquivalentTo(new[] { KeyValuePair.Create("n", "7") }));
                Assert.That(verifier.Verify(redirect.Ticket.Span, IPAddress.Loopback), Is.EqualTo(TicketStatus.Valid));
            });
        }
    }

    [Test]
    public async Task Redirect_carries_ranked_alternatives()
    {
        var tier2 = await _fixture.StartAsync(_fixture.Options(configure: o => o.Selection.MaxAlternatives = 2));
        using var a = RawAppServer.Register(tier2, "a", ServiceA);
        using var b = RawAppServer.Register(tier2, "b", ServiceB);
        a.Heartbeat("a", load: 100, active: 1);
        b.Heartbeat("b", load: 500, active: 4);

        // Up is not enough (a live REGISTER is up at once): the ranking needs both heartbeats' figures in.
        await Eventually.TrueAsync(
            () => tier2.Selection.Servers.Count(s => s.State == Vip.Selection.ServerState.Up && s.ActiveTasks == (s.Id == "a" ? 1 : 4)) == 2,
            "both up with their heartbeats' figures");
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);

        var redirect = ForwardExpectingRedirect(tier1, Forwarding.Task("c1"));

        Assert.That(redirect.ServerId, Is.EqualTo("a"));
        Assert.That(redirect.Alternatives.Select(x => x.ServerId), Is.EqualTo(new[] { "b" }));
        Assert.That(redirect.Alternatives[0].Server.ToIPEndPoint(), Is.EqualTo(ServiceB));
    }

    [Test]
    public async Task Heartbeat_expiry_takes_a_server_out_and_its_next_heartbeat_brings_it_back()
    {
        var tier2 = await _fixture.StartAsync(_fixture.Options(configure: o => o.Selection.HeartbeatInterval = TimeSpan.FromMilliseconds(100)));
        using var app = RawAppServer.Register(tier2, "a", ServiceA);
        app.Heartbeat("a");
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);
        ForwardExpectingRedirect(tier1, Forwarding.Task("c1"));

        // No heartbeat for longer than 3 × 100 ms.
        Reject? reject = null;
        await Eventually.TrueAsync(() =>
        {
            tier1.Send(1, Forwarding.Task("c1"));
            var f = tier1.Receive()!;
            reject = f.Type == FrameType.Reject ? Reject.Read(f.Payload) : null;
            return reject is not null;
        }, "expiry");
        Assert.That(reject!.Code, Is.EqualTo(RejectCode.NoMatchingServer));
        Assert.That(reject.RetryAfterMs, Is.GreaterThan(0u));

        app.Heartbeat("a");
        await Eventually.TrueAsync(() =>
        {
            tier1.Send(2, Forwarding.Task("c1"));
            return tier1.Receive()!.Type == FrameType.Redirect;
        }, "return after a heartbeat");
    }

    [Test]
    public async Task Closed_control_link_takes_the_server_out_at_once()
    {
        var tier2 = await _fixture.StartAsync();
        var app = RawAppServer.Register(tier2, "a", ServiceA);
        app.Heartbeat("a");
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);
        ForwardExpectingRedirect(tier1, Forwarding.Task("c1"));

        app.Dispose();
        await Eventually.TrueAsync(() => tier2.ConnectedServers == 0, "the link to be seen closed");

        Assert.That(ForwardExpectingReject(tier1, Forwarding.Task("c1")).Code, Is.EqualTo(RejectCode.NoMatchingServer));
    }

    [Test]
    public async Task Draining_server_is_not_chosen()
    {
        var tier2 = await _fixture.StartAsync();
        using var app = RawAppServer.Register(tier2, "a", ServiceA);
        app.Heartbeat("a", state: Vip.Protocol.ServerState.Draining);
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);
        await Eventually.TrueAsync(() => tier2.Selection.Servers[0].State == Vip.Selection.ServerState.Draining, "draining");

        Assert.That(ForwardExpectingReject(tier1, Forwarding.Task("c1")).Code, Is.EqualTo(RejectCode.NoMatchingServer));
    }

    [Test]
    public async Task Full_servers_give_overloaded_with_retry_after()
    {
        var tier2 = await _fixture.StartAsync();
        using var app = RawAppServer.Register(tier2, "a", ServiceA, capacity: 2);
        app.Heartbeat("a", load: 1000, active: 2);
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);
        await Eventually.TrueAsync(() => tier2.Selection.Servers[0].ActiveTasks == 2, "load seen");

        var reject = ForwardExpectingReject(tier1, Forwarding.Task("c1"));

        Assert.That(reject.Code, Is.EqualTo(RejectCode.Overloaded));
        Assert.That(reject.RetryAfterMs, Is.GreaterThan(0u));
    }

    [Test]
    public async Task Tickets_issued_since_the_last_heartbeat_count_as_load()
    {
        var tier2 = await _fixture.StartAsync();
        using var app = RawAppServer.Register(tier2, "a", ServiceA, capacity: 3);
        app.Heartbeat("a");
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);
        await Eventually.TrueAsync(() => tier2.Selection.Servers[0].State == Vip.Selection.ServerState.Up, "up");

        for (var i = 0; i < 3; i++)
        {
            ForwardExpectingRedirect(tier1, Forwarding.Task("c1"), (ulong)i);
        }

        Assert.That(ForwardExpectingReject(tier1, Forwarding.Task("c1")).Code, Is.EqualTo(RejectCode.Overloaded));
        app.Heartbeat("a", active: 0);
        await Eventually.TrueAsync(() => tier2.Selection.Servers[0].IssuedSinceHeartbeat == 0, "heartbeat to reset the count");
        ForwardExpectingRedirect(tier1, Forwarding.Task("c1"));
    }

    [Test]
    public async Task Malformed_requirement_is_rejected_with_its_position_and_the_link_stays_open()
    {
        var tier2 = await _fixture.StartAsync();
        using var app = RawAppServer.Register(tier2, "a", ServiceA, 8, ("region", "eu"));
        app.Heartbeat("a");
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);

        var reject = ForwardExpectingReject(tier1, Forwarding.Task("c1", "region in (eu"));

        Assert.That(reject.Code, Is.EqualTo(RejectCode.Malformed));
        Assert.That(reject.Message, Does.Contain("13").Or.Contain("position"));
        ForwardExpectingRedirect(tier1, Forwarding.Task("c1", "region in (eu)"));
    }

    [Test]
    public async Task Malformed_forward_payload_is_rejected_and_the_link_closed()
    {
        var tier2 = await _fixture.StartAsync();
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);
        var bytes = new System.Buffers.ArrayBufferWriter<byte>();
        FrameWriter.WriteRaw(bytes, FrameType.Forward, 77, [2, (byte)'t', (byte)'1', 9, 9]);
        tier1.SendBytes(bytes.WrittenSpan);

        var answer = tier1.Receive()!;

        Assert.That(answer.Type, Is.EqualTo(FrameType.Reject));
        Assert.That(answer.RequestId, Is.EqualTo(77UL));
        Assert.That(Reject.Read(answer.Payload).Code, Is.EqualTo(RejectCode.Malformed));
        Assert.That(tier1.Closed(), Is.True);
    }

    [Test]
    public async Task Oversized_frame_is_rejected_as_too_large_before_its_payload_arrives()
    {
        var tier2 = await _fixture.StartAsync();
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);
        var header = new byte[FrameHeader.Size];
        new FrameHeader(FrameType.Forward, 0, ProtocolLimits.DefaultMaxPayload + 1, 55).WriteTo(header);
        tier1.SendBytes(header);

        var answer = tier1.Receive()!;

        Assert.That(Reject.Read(answer.Payload).Code, Is.EqualTo(RejectCode.TooLarge));
        Assert.That(answer.RequestId, Is.EqualTo(55UL));
        Assert.That(tier1.Closed(), Is.True);
    }

    [Test]
    public async Task Ping_is_answered_with_pong_on_both_ports()
    {
        var tier2 = await _fixture.StartAsync();
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);
        using var control = RawPeer.Connect(tier2.ControlEndPoint);

        tier1.Send(3, new Ping("hi"u8.ToArray()));
        control.Send(4, new Ping("yo"u8.ToArray()));
        var p1 = tier1.Receive()!;
        var p2 = control.Receive()!;

        Assert.That((p1.Type, p1.RequestId, Encoding.ASCII.GetString(p1.Payload)), Is.EqualTo((FrameType.Pong, 3UL, "hi")));
        Assert.That((p2.Type, p2.RequestId, Encoding.ASCII.GetString(p2.Payload)), Is.EqualTo((FrameType.Pong, 4UL, "yo")));
    }

    [Test]
    public async Task Unknown_client_is_rejected_when_configured_so()
    {
        var tier2 = await _fixture.StartAsync(_fixture.Options(configure: o => o.Selection.UnknownClients = UnknownClientMode.Reject));
        using var app = RawAppServer.Register(tier2, "a", ServiceA);
        app.Heartbeat("a");
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);
        await using var admin = await Tier2AdminClient.ConnectAsync(tier2.ControlEndPoint, Tier2Fixture.Token, TimeSpan.FromSeconds(5));

        Assert.That(ForwardExpectingReject(tier1, Forwarding.Task("stranger")).Code, Is.EqualTo(RejectCode.UnknownClient));
        await admin.SendAsync(Tier2AdminCommands.ClientsSet, ["stranger", "tier=free"], TimeSpan.FromSeconds(5));
        ForwardExpectingRedirect(tier1, Forwarding.Task("stranger"));
    }

    [Test]
    public async Task Client_records_and_network_rules_bind_clients_to_matching_servers()
    {
        var tier2 = await _fixture.StartAsync(_fixture.Options(configure: o =>
        {
            o.Selection.BindingKeys = ["pool", "region"];
        }));
        using var gold = RawAppServer.Register(tier2, "gold", ServiceA, 100, ("pool", "gold"), ("region", "eu"));
        using var std = RawAppServer.Register(tier2, "std", ServiceB, 100, ("region", "us"));
        gold.Heartbeat("gold");
        std.Heartbeat("std");
        await using var admin = await Tier2AdminClient.ConnectAsync(tier2.ControlEndPoint, Tier2Fixture.Token, TimeSpan.FromSeconds(5));
        Assert.That((await admin.SendAsync(Tier2AdminCommands.ClientsSet, ["vip-client", "pool=gold", "region=eu"], TimeSpan.FromSeconds(5))).Status, Is.Zero);
        Assert.That((await admin.SendAsync(Tier2AdminCommands.NetworksSet, ["10.1.0.0/16", "region=eu"], TimeSpan.FromSeconds(5))).Status, Is.Zero);
        Assert.That((await admin.SendAsync(Tier2AdminCommands.NetworksSet, ["10.2.0.0/16", "region=us"], TimeSpan.FromSeconds(5))).Status, Is.Zero);
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);

        for (var i = 0; i < 10; i++)
        {
            Assert.That(ForwardExpectingRedirect(tier1, Forwarding.Task("vip-client"), (ulong)i).ServerId, Is.EqualTo("gold"));
        }

        // Bindings are reserved: a client in 10.1.0.0/16 has region=eu from the rule and no pool, so only a server
        // with no pool and region=eu would do, and there is none; one in 10.2.0.0/16 has region=us: "std".
        Assert.That(ForwardExpectingReject(tier1, Forwarding.Task("plain", from: IPAddress.Parse("10.1.2.3"))).Code, Is.EqualTo(RejectCode.NoMatchingServer));
        Assert.That(ForwardExpectingRedirect(tier1, Forwarding.Task("plain", from: IPAddress.Parse("10.2.0.1"))).ServerId, Is.EqualTo("std"));
    }

    [Test]
    public async Task Admin_without_the_token_is_refused()
    {
        var withToken = await _fixture.StartAsync();
        var noToken = await _fixture.StartAsync(_fixture.Options("other.db", o => o.AdminToken = null));
        await using var wrong = await Tier2AdminClient.ConnectAsync(withToken.ControlEndPoint, "guess", TimeSpan.FromSeconds(5));
        await using var empty = await Tier2AdminClient.ConnectAsync(withToken.ControlEndPoint, "", TimeSpan.FromSeconds(5));
        await using var unconfigured = await Tier2AdminClient.ConnectAsync(noToken.ControlEndPoint, Tier2Fixture.Token, TimeSpan.FromSeconds(5));

        foreach (var client in new[] { wrong, empty, unconfigured })
        {
            var ex = Assert.ThrowsAsync<Tier2AdminException>(() => client.SendAsync(Tier2AdminCommands.ClientsSet, ["c", "a=b"], TimeSpan.FromSeconds(5)));
            Assert.That(ex!.Code, Is.EqualTo(RejectCode.Unauthorized));
        }

        Assert.That(withToken.Store!.Snapshot.Clients, Is.Empty, "nothing was changed");
    }

    [Test]
    public async Task Admin_commands_answer_json_and_report_unknown_names()
    {
        var tier2 = await _fixture.StartAsync();
        using var app = RawAppServer.Register(tier2, "a", ServiceA, 8, ("region", "eu"));
        app.Heartbeat("a", load: 250, active: 2);
        await using var admin = await Tier2AdminClient.ConnectAsync(tier2.ControlEndPoint, Tier2Fixture.Token, TimeSpan.FromSeconds(5));
        var t = TimeSpan.FromSeconds(5);
        await Eventually.TrueAsync(() => tier2.Selection.Servers.Count == 1 && tier2.Selection.Servers[0].ActiveTasks == 2, "heartbeat applied");

        var list = await admin.SendAsync(Tier2AdminCommands.ServersList, [], t);
        var missing = await admin.SendAsync(Tier2AdminCommands.ClientsGet, ["nobody"], t);
        var bad = await admin.SendAsync(Tier2AdminCommands.NetworksSet, ["10.1.2.3/16", "a=b"], t);
        var unknown = await admin.SendAsync("reboot", [], t);
        var explain = await admin.SendAsync(Tier2AdminCommands.Explain, ["c1", "region=us"], t);

        using var doc = System.Text.Json.JsonDocument.Parse(list.Json);
        var server = doc.RootElement.GetProperty("servers")[0];
        Assert.Multiple(() =>
        {
            Assert.That(list.Status, Is.Zero);
            Assert.That(server.GetProperty("id").GetString(), Is.EqualTo("a"));
            Assert.That(server.GetProperty("address").GetString(), Is.EqualTo(ServiceA.ToString()));
            Assert.That(server.GetProperty("attributes").GetProperty("region").GetString(), Is.EqualTo("eu"));
            Assert.That(server.GetProperty("state").GetString(), Is.EqualTo("up"));
            Assert.That(server.GetProperty("activeTasks").GetInt32(), Is.EqualTo(2));
            Assert.That(server.GetProperty("connected").GetBoolean(), Is.True);
            Assert.That(missing.Status, Is.EqualTo(Tier2AdminCommands.StatusNotFound));
            Assert.That(bad.Status, Is.EqualTo(Tier2AdminCommands.StatusBadRequest));
            Assert.That(unknown.Status, Is.EqualTo(Tier2AdminCommands.StatusBadRequest));
            Assert.That(explain.Json, Does.Contain("RequirementFailed"));
        });
    }

    [Test]
    public async Task Operator_drain_stops_selection_at_once_and_survives_heartbeats()
    {
        var tier2 = await _fixture.StartAsync();
        using var app = RawAppServer.Register(tier2, "a", ServiceA);
        app.Heartbeat("a");
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);
        await using var admin = await Tier2AdminClient.ConnectAsync(tier2.ControlEndPoint, Tier2Fixture.Token, TimeSpan.FromSeconds(5));
        ForwardExpectingRedirect(tier1, Forwarding.Task("c1"));

        Assert.That((await admin.SendAsync(Tier2AdminCommands.ServersDrain, ["a"], TimeSpan.FromSeconds(5))).Status, Is.Zero);
        Assert.That(ForwardExpectingReject(tier1, Forwarding.Task("c1")).Code, Is.EqualTo(RejectCode.NoMatchingServer));
        app.Heartbeat("a");
        await Task.Delay(50);
        Assert.That(ForwardExpectingReject(tier1, Forwarding.Task("c1")).Code, Is.EqualTo(RejectCode.NoMatchingServer));

        Assert.That((await admin.SendAsync(Tier2AdminCommands.ServersUndrain, ["a"], TimeSpan.FromSeconds(5))).Status, Is.Zero);
        ForwardExpectingRedirect(tier1, Forwarding.Task("c1"));
    }

    [Test]
    public async Task A_fresh_daemon_answers_unavailable_while_app_servers_are_still_registering()
    {
        var tier2 = await _fixture.StartAsync(_fixture.Options(configure: o => o.RegistrationGrace = TimeSpan.FromMinutes(1)));
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);

        // Unavailable, not "no matching server": tier-1 asks another tier-2 and the client retries.
        var reject = ForwardExpectingReject(tier1, Forwarding.Task("c1"));
        Assert.That(reject.Code, Is.EqualTo(RejectCode.Unavailable));
        Assert.That(reject.RetryAfterMs, Is.InRange(1u, 1000u));
        Assert.That(reject.Message, Does.Contain("just started"));

        // A matching server that registers is chosen at once, warm-up or not.
        using var app = RawAppServer.Register(tier2, "a", ServiceA, 8, ("region", "eu"));
        app.Heartbeat("a");
        ForwardExpectingRedirect(tier1, Forwarding.Task("c1", "region=eu"), 10);
        Assert.That(ForwardExpectingReject(tier1, Forwarding.Task("c1", "region=us"), 11).Code, Is.EqualTo(RejectCode.Unavailable));
    }

    [Test]
    public async Task Warm_up_ends_once_every_remembered_server_has_registered_again()
    {
        var options = _fixture.Options(configure: o => o.RegistrationGrace = TimeSpan.FromMinutes(1));
        var first = await _fixture.StartAsync(options);
        using (var a = RawAppServer.Register(first, "a", ServiceA, 8, ("region", "eu")))
        using (var b = RawAppServer.Register(first, "b", ServiceB, 8, ("region", "eu")))
        {
            await Eventually.TrueAsync(() => first.Store!.Snapshot.Servers.Count == 2, "both servers stored");
        }

        await _fixture.StopAsync(first);
        var second = await _fixture.StartAsync(_fixture.Options(configure: o => o.RegistrationGrace = TimeSpan.FromMinutes(1)));
        using var tier1 = RawPeer.Connect(second.ListenEndPoint);
        Assert.That(ForwardExpectingReject(tier1, Forwarding.Task("c1", "region=us"), 1).Code, Is.EqualTo(RejectCode.Unavailable));

        using var a2 = RawAppServer.Register(second, "a", ServiceA, 8, ("region", "eu"));
        Assert.That(ForwardExpectingReject(tier1, Forwarding.Task("c1", "region=us"), 2).Code, Is.EqualTo(RejectCode.Unavailable), "b is still awaited");

        using var b2 = RawAppServer.Register(second, "b", ServiceB, 8, ("region", "eu"));
        Assert.That(ForwardExpectingReject(tier1, Forwarding.Task("c1", "region=us"), 3).Code, Is.EqualTo(RejectCode.NoMatchingServer), "every remembered server is back: the answer is final");
    }

    [Test]
    public async Task Warm_up_ends_after_the_grace_period_even_if_nobody_registers()
    {
        var tier2 = await _fixture.StartAsync(_fixture.Options(configure: o => o.RegistrationGrace = TimeSpan.FromMilliseconds(200)));
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);
        ulong id = 0;
        await Eventually.TrueAsync(() => ForwardExpectingReject(tier1, Forwarding.Task("c1"), ++id).Code == RejectCode.NoMatchingServer, "the warm-up to end");
        Assert.That(tier2.IsWarmingUp(), Is.False);
    }

    [Test]
    public async Task Store_survives_a_restart_with_servers_clients_and_rules_intact()
    {
        var options = _fixture.Options();
        var first = await _fixture.StartAsync(options);
        using (var app = RawAppServer.Register(first, "a", ServiceA, 6, ("region", "eu")))
        {
            app.Heartbeat("a");
            await using var admin = await Tier2AdminClient.ConnectAsync(first.ControlEndPoint, Tier2Fixture.Token, TimeSpan.FromSeconds(5));
            var t = TimeSpan.FromSeconds(5);
            Assert.That((await admin.SendAsync(Tier2AdminCommands.ClientsSet, ["c1", "pool=gold", "tier=2"], t)).Json, Does.Contain("\"durable\":true"));
            await admin.SendAsync(Tier2AdminCommands.NetworksSet, ["10.1.0.0/16", "region=eu"], t);
            await admin.SendAsync(Tier2AdminCommands.ServersDrain, ["a"], t);
        }

        await _fixture.StopAsync(first);
        var second = await _fixture.StartAsync(_fixture.Options());

        var snapshot = second.Store!.Snapshot;
        Assert.Multiple(() =>
        {
            Assert.That(snapshot.Servers["a"].Record.Service, Is.EqualTo(ServiceA));
            Assert.That(snapshot.Servers["a"].Record.Capacity, Is.EqualTo(6));
            Assert.That(snapshot.Servers["a"].Record.Attributes["region"], Is.EqualTo("eu"));
            Assert.That(snapshot.Servers["a"].Record.AdminDrained, Is.True);
            Assert.That(snapshot.Clients["c1"].Attributes, Is.EquivalentTo(new Dictionary<string, string> { ["pool"] = "gold", ["tier"] = "2" }));
            Assert.That(snapshot.Networks.Keys.Select(n => n.ToString()), Is.EqualTo(new[] { "10.1.0.0/16" }));
            // Reloaded servers are listed but not candidates until they are heard from.
            Assert.That(second.Selection.Servers.Single().Id, Is.EqualTo("a"));
            Assert.That(second.Selection.Servers.Single().State, Is.EqualTo(Vip.Selection.ServerState.Unknown));
            Assert.That(second.Selection.Clients.TryGetClient("c1", out _), Is.True);
        });
    }

    [Test]
    public async Task Concurrent_registrations_heartbeats_and_forwards_keep_every_answer_and_expect_consistent()
    {
        var tier2 = await _fixture.StartAsync();
        const int Servers = 12;
        const int Tier1Links = 4;
        const int PerLink = 300;

        // The peers below block thread-pool threads (synchronous sockets, 16 of them at once). Without enough threads
        // up front, the pool grows by about one per 0.5 s on this 2-core machine, and the server under test, which
        // shares the pool, waited seconds for a thread: a registration's answer then came after the peer's 5 s
        // receive timeout. What is tested is concurrency in the server, not the pool's growth rate.
        ThreadPool.GetMinThreads(out var minWorkers, out var minIo);
        ThreadPool.SetMinThreads(Math.Max(minWorkers, Servers + Tier1Links + 8), minIo);
        try
        {
            await RunConcurrentRegistrationsHeartbeatsAndForwards(tier2, Servers, Tier1Links, PerLink);
        }
        finally
        {
            ThreadPool.SetMinThreads(minWorkers, minIo);
        }
    }

    private static async Task RunConcurrentRegistrationsHeartbeatsAndForwards(Tier2Server tier2, int Servers, int Tier1Links, int PerLink)
    {
        var apps = new RawPeer[Servers];
        await Task.WhenAll(Enumerable.Range(0, Servers).Select(i => Task.Run(() =>
            apps[i] = RawAppServer.Register(tier2, "s" + i, new IPEndPoint(IPAddress.Parse("127.0.1." + (i + 1)), 6000 + i), 1_000_000))));
        var expectsPerServer = new int[Servers];
        using var stop = new CancellationTokenSource();
        var heartbeaters = Enumerable.Range(0, Servers).Select(i => Task.Run(async () =>
        {
            // Heartbeat every 20 ms while reading EXPECTs, until the FORWARDs are done.
            apps[i].Socket.ReceiveTimeout = 20;
            while (!stop.IsCancellationRequested)
            {
                apps[i].Heartbeat("s" + i, active: 0);
                try
                {
                    while (apps[i].Socket.Poll(20_000, System.Net.Sockets.SelectMode.SelectRead) && apps[i].Receive(TimeSpan.FromSeconds(5)) is { } f)
                    {
                        if (f.Type == FrameType.Expect)
                        {
                            Interlocked.Increment(ref expectsPerServer[i]);
                        }
                    }
                }
                catch (System.Net.Sockets.SocketException)
                {
                }

                await Task.Yield();
            }
        })).ToArray();
        await Eventually.TrueAsync(() => tier2.Selection.Servers.Count(s => s.State == Vip.Selection.ServerState.Up) == Servers, "all up");

        var redirectsPerServer = new int[Servers];
        await Task.WhenAll(Enumerable.Range(0, Tier1Links).Select(l => Task.Run(() =>
        {
            using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);
            for (var i = 0; i < PerLink; i++)
            {
                tier1.Send((ulong)i, Forwarding.Task("c" + (i % 7)));
            }

            var seen = new HashSet<ulong>();
            for (var i = 0; i < PerLink; i++)
            {
                var f = tier1.Receive()!;
                Assert.That(f.Type, Is.EqualTo(FrameType.Redirect), () => Reject.Read(f.Payload).ToString());
                Assert.That(seen.Add(f.RequestId), Is.True, "each request answered once");
                var r = Redirect.Read(f.Payload);
                Interlocked.Increment(ref redirectsPerServer[int.Parse(r.ServerId[1..], System.Globalization.CultureInfo.InvariantCulture)]);
            }
        })));

        await Eventually.TrueAsync(() => expectsPerServer.Sum() == Tier1Links * PerLink, "every EXPECT read");
        await stop.CancelAsync();
        await Task.WhenAll(heartbeaters);
        Assert.That(expectsPerServer, Is.EqualTo(redirectsPerServer), "one EXPECT per REDIRECT, to the chosen server");
        Assert.That(redirectsPerServer.Count(n => n > 0), Is.GreaterThan(1), "the load was spread");
        foreach (var a in apps)
        {
            a.Dispose();
        }
    }

    [Test]
    public async Task The_whole_path_works_with_the_real_agent_in_strict_mode()
    {
        var tier2 = await _fixture.StartAsync();
        var app = new SampleApp();
        var o = new AppServerAgentOptions { ServerId = "app-1", Capacity = 4, RequireExpect = true };
        o.ControlEndPoints.Add(tier2.ControlEndPoint);
        o.Attributes["kinds"] = "sha256,primes";
        await using var agent = SampleApp.CreateAgent(app, o, _fixture.Keys);
        await agent.StartAsync();
        await Eventually.TrueAsync(() => tier2.Selection.Servers.Any(s => s.State == Vip.Selection.ServerState.Up), "the agent to register and heartbeat");
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);

        var redirect = ForwardExpectingRedirect(tier1, Forwarding.Task("c1", "", "sha256"));
        await using var peer = await TestPeer.ConnectAsync(redirect.Server.ToIPEndPoint(), IPAddress.Loopback);
        await peer.SendAsync(1, new Claim(redirect.Ticket));
        var ok = await peer.NextAsync();
        await peer.SendAsync(2, new TaskRequest("c1", "sha256", [], "", "abc"u8.ToArray()));
        var result = TaskResult.Read((await peer.NextAsync())!.Payload);

        Assert.That(ok!.Type, Is.EqualTo(FrameType.ClaimOk));
        Assert.That(Encoding.UTF8.GetString(result.Output.Span), Is.EqualTo("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));

        // The same ticket again is a replay; a task of a kind the server does not list finds no server.
        await using var again = await TestPeer.ConnectAsync(redirect.Server.ToIPEndPoint(), IPAddress.Loopback);
        await again.SendAsync(1, new Claim(redirect.Ticket));
        Assert.That(ClaimDenied.Read((await again.NextAsync())!.Payload).Reason, Is.EqualTo(ClaimDenyReason.Replayed));
        Assert.That(ForwardExpectingReject(tier1, Forwarding.Task("c1", "", "echo")).Code, Is.EqualTo(RejectCode.NoMatchingServer));
    }

    [Test]
    public async Task Agent_stop_deregisters_and_the_server_leaves_the_store()
    {
        var tier2 = await _fixture.StartAsync();
        var o = new AppServerAgentOptions { ServerId = "app-1" };
        o.ControlEndPoints.Add(tier2.ControlEndPoint);
        var agent = new AppServerAgent(o, (c, ct) => ValueTask.CompletedTask, _fixture.Keys);
        await agent.StartAsync();
        await Eventually.TrueAsync(() => agent.RegisteredLinks == 1 && tier2.Store!.Snapshot.Servers.ContainsKey("app-1"), "registration");

        await agent.DisposeAsync();

        await Eventually.TrueAsync(() => !tier2.Store!.Snapshot.Servers.ContainsKey("app-1") && tier2.Selection.Servers.Count == 0, "deregistration");
    }

    [Test]
    public async Task Second_registration_of_an_id_on_a_new_link_replaces_the_old_link()
    {
        var tier2 = await _fixture.StartAsync();
        using var first = RawAppServer.Register(tier2, "a", ServiceA);
        using var second = RawAppServer.Register(tier2, "a", ServiceB);
        second.Heartbeat("a");
        using var tier1 = RawPeer.Connect(tier2.ListenEndPoint);

        Assert.That(first.Closed(), Is.True, "the stale link is closed");
        await Eventually.TrueAsync(() => tier2.Selection.Servers.Single().Service.Equals(ServiceB), "new address published");
        second.Heartbeat("a");
        Assert.That(ForwardExpectingRedirect(tier1, Forwarding.Task("c1")).Server.ToIPEndPoint(), Is.EqualTo(ServiceB));
    }

    [Test]
    public async Task Missing_store_directory_fails_start_with_a_clear_message()
    {
        var options = _fixture.Options(configure: o => o.DatabasePath = Path.Combine(_fixture.Directory, "no-such-dir", "x.db"));
        await using var server = new Tier2Server(options, _fixture.Keys);

        var ex = Assert.ThrowsAsync<StoreOpenException>(() => server.StartAsync());
        Assert.That(ex!.Message, Does.Contain("no-such-dir"));
    }

    [Test]
    public async Task Second_daemon_on_the_same_store_file_fails_start()
    {
        var options = _fixture.Options();
        await _fixture.StartAsync(options);
        await using var second = new Tier2Server(_fixture.Options(), _fixture.Keys);

        Assert.ThrowsAsync<StoreOpenException>(() => second.StartAsync());
    }
}
