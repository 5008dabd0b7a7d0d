using System.Net;
using System.Security.Cryptography;
using System.Text;
using Vip.Agent;
using Vip.Protocol;
using Vip.Tickets;

namespace Vip.Tests.Agent;

public class AgentTests
{
    private static readonly IPAddress Loopback = IPAddress.Loopback;
    private TicketKeyRing _keys = null!;
    private FakeTier2 _tier2 = null!;
    private int _handlerRuns;

    [SetUp]
    public void SetUp()
    {
        _keys = TicketKeyRing.CreateNew();
        _tier2 = new FakeTier2();
        _handlerRuns = 0;
    }

    [TearDown]
    public async Task TearDown() => await _tier2.DisposeAsync();

    private AppServerAgent NewAgent(Action<AppServerAgentOptions>? configure = null, ClaimedConnectionHandler? handler = null, string id = "app-1")
    {
        var o = new AppServerAgentOptions { ServerId = id, Capacity = 4, ReconnectMinDelay = TimeSpan.FromMilliseconds(20), ReconnectMaxDelay = TimeSpan.FromMilliseconds(200) };
        o.ControlEndPoints.Add(_tier2.EndPoint);
        o.Attributes["region"] = "eu";
        configure?.Invoke(o);
        return new AppServerAgent(o, handler ?? CountingHandler, _keys);
    }

    private async ValueTask CountingHandler(ClaimedConnection c, CancellationToken ct)
    {
        Interlocked.Increment(ref _handlerRuns);
        await c.Transport.Output.WriteAsync("hello"u8.ToArray(), ct);
    }

    private byte[] Ticket(string serverId = "app-1", IPAddress? client = null, ulong ticketId = 7, long? expiresUnixMs = null, TicketKeyRing? keys = null)
    {
        using var issuer = new TicketIssuer(keys ?? _keys);
        var buffer = new byte[TicketIssuer.MaxTicketLength];
        var n = expiresUnixMs is { } e
            ? issuer.Issue(buffer, serverId, client ?? Loopback, ticketId, e)
            : issuer.Issue(buffer, serverId, client ?? Loopback, ticketId, out _);
        return buffer[..n];
    }

    private static async Task<ReceivedFrame?> ClaimAsync(AppServerAgent agent, byte[] ticket, TestPeer? peer = null)
    {
        peer ??= await TestPeer.ConnectAsync(agent.LocalEndPoint);
        await peer.SendAsync(5, new Claim(ticket));
        return await peer.NextAsync();
    }

    [Test]
    public async Task Agent_registers_with_its_address_capacity_and_attributes_then_heartbeats()
    {
        await using var agent = NewAgent();
        await agent.StartAsync();

        var reg = Register.Read((await _tier2.NextAsync(FrameType.Register)).Payload);
        var hb = Heartbeat.Read((await _tier2.NextAsync(FrameType.Heartbeat)).Payload);

        Assert.Multiple(() =>
        {
            Assert.That(reg.ServerId, Is.EqualTo("app-1"));
            Assert.That(reg.Service.ToIPEndPoint(), Is.EqualTo(agent.LocalEndPoint));
            Assert.That(reg.Capacity, Is.EqualTo(4u));
            Assert.That(reg.Attributes, Is.EquivalentTo(new[] { KeyValuePair.Create("region", "eu") }));
            Assert.That(hb.ServerId, Is.EqualTo("app-1"));
            Assert.That(hb.State, Is.EqualTo(ServerState.Up));
        });
    }

    [Test]
    public async Task Draining_is_reported_at_once_and_stop_deregisters()
    {
        var agent = NewAgent();
        await agent.StartAsync();
        await _tier2.NextAsync(FrameType.Register);
        await Eventually.TrueAsync(() => agent.RegisteredLinks == 1, "registration");

        agent.SetDraining(true);
        Heartbeat hb;
        do
        {
            hb = Heartbeat.Read((await _tier2.NextAsync(FrameType.Heartbeat)).Payload);
        }
        while (hb.State != ServerState.Draining);

        await agent.DisposeAsync();
        var dereg = Deregister.Read((await _tier2.NextAsync(FrameType.Deregister)).Payload);
        Assert.That(dereg.ServerId, Is.EqualTo("app-1"));
    }

    [Test]
    public async Task Agent_reconnects_and_registers_again_after_the_link_drops()
    {
        await using var agent = NewAgent();
        await agent.StartAsync();
        await _tier2.NextAsync(FrameType.Register);

        _tier2.DropLinks();

        await _tier2.NextAsync(FrameType.Register);
        await Eventually.TrueAsync(() => agent.RegisteredLinks == 1, "re-registration");
        Assert.That(_tier2.Accepted, Is.GreaterThanOrEqualTo(2));
    }

    [Test]
    public async Task Valid_ticket_gets_claim_ok_and_reaches_the_handler_once()
    {
        await using var agent = NewAgent();
        await agent.StartAsync();
        await using var peer = await TestPeer.ConnectAsync(agent.LocalEndPoint);

        var answer = await ClaimAsync(agent, Ticket(), peer);

        Assert.That(answer!.Type, Is.EqualTo(FrameType.ClaimOk));
        Assert.That(ClaimOk.Read(answer.Payload).ServerId, Is.EqualTo("app-1"));
        await Eventually.TrueAsync(() => _handlerRuns == 1, "the handler to run");
    }

    private static IEnumerable<TestCaseData> BadTickets()
    {
        yield return new TestCaseData("forged", ClaimDenyReason.BadSignature).SetName("Forged_ticket_is_denied_and_the_handler_never_runs");
        yield return new TestCaseData("expired", ClaimDenyReason.Expired).SetName("Expired_ticket_is_denied_and_the_handler_never_runs");
        yield return new TestCaseData("wrong-ip", ClaimDenyReason.WrongClient).SetName("Ticket_for_another_client_address_is_denied_and_the_handler_never_runs");
        yield return new TestCaseData("wrong-server", ClaimDenyReason.WrongServer).SetName("Ticket_for_another_server_is_denied_and_the_handler_never_runs");
        yield return new TestCaseData("other-key", ClaimDenyReason.UnknownKey).SetName("Ticket_signed_with_an_unknown_key_is_denied_and_the_handler_never_runs");
        yield return new TestCaseData("garbage", ClaimDenyReason.Malformed).SetName("Bytes_that_are_not_a_ticket_are_denied_and_the_handler_never_runs");
    }

    [TestCaseSource(nameof(BadTickets))]
    public async Task Bad_ticket_is_denied(string kind, ClaimDenyReason expected)
    {
        await using var agent = NewAgent();
        await agent.StartAsync();
        var ticket = kind switch
        {
            "forged" => Forge(Ticket()),
            "expired" => Ticket(expiresUnixMs: DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeMilliseconds()),
            "wrong-ip" => Ticket(client: IPAddress.Parse("127.0.0.99")),
            "wrong-server" => Ticket(serverId: "app-2"),
            "other-key" => Ticket(keys: new TicketKeyRing([TicketKey.Generate(9, DateTimeOffset.UtcNow)], 9)),
            _ => RandomNumberGenerator.GetBytes(40),
        };
        await using var peer = await TestPeer.ConnectAsync(agent.LocalEndPoint);

        var answer = await ClaimAsync(agent, ticket, peer);

        Assert.That(answer!.Type, Is.EqualTo(FrameType.ClaimDenied));
        Assert.That(ClaimDenied.Read(answer.Payload).Reason, Is.EqualTo(expected));
        Assert.That(await peer.ClosedAsync(), Is.True, "the connection is closed after CLAIM-DENIED");
        Assert.That(_handlerRuns, Is.Zero);
    }

    private static byte[] Forge(byte[] ticket)
    {
        var copy = (byte[])ticket.Clone();
        copy[^1] ^= 0x01;
        return copy;
    }

    [Test]
    public async Task Replayed_ticket_is_denied_the_second_time()
    {
        await using var agent = NewAgent();
        await agent.StartAsync();
        var ticket = Ticket();

        var first = await ClaimAsync(agent, ticket);
        var second = await ClaimAsync(agent, ticket);

        Assert.That(first!.Type, Is.EqualTo(FrameType.ClaimOk));
        Assert.That(second!.Type, Is.EqualTo(FrameType.ClaimDenied));
        Assert.That(ClaimDenied.Read(second.Payload).Reason, Is.EqualTo(ClaimDenyReason.Replayed));
        await Eventually.TrueAsync(() => _handlerRuns == 1, "one handler run");
        await Task.Delay(50);
        Assert.That(_handlerRuns, Is.EqualTo(1));
    }

    [Test]
    public async Task Client_address_check_can_be_turned_off_for_nat()
    {
        await using var agent = NewAgent(o => o.VerifyClientAddress = false);
        await agent.StartAsync();

        var answer = await ClaimAsync(agent, Ticket(client: IPAddress.Parse("127.0.0.99")));

        Assert.That(answer!.Type, Is.EqualTo(FrameType.ClaimOk));
    }

    [Test]
    public async Task Strict_mode_denies_a_ticket_without_expect_notice()
    {
        await using var agent = NewAgent(o =>
        {
            o.RequireExpect = true;
            o.ExpectWait = TimeSpan.FromMilliseconds(100);
        });
        await agent.StartAsync();

        var answer = await ClaimAsync(agent, Ticket(ticketId: 11));

        Assert.That(ClaimDenied.Read(answer!.Payload).Reason, Is.EqualTo(ClaimDenyReason.NotExpected));
        Assert.That(_handlerRuns, Is.Zero);
    }

    [Test]
    public async Task Strict_mode_accepts_a_ticket_after_its_expect_notice()
    {
        await using var agent = NewAgent(o => o.RequireExpect = true);
        var seen = new TaskCompletionSource<ulong>(TaskCreationOptions.RunContinuationsAsynchronously);
        agent.ExpectObserved = id => seen.TrySetResult(id);
        await agent.StartAsync();
        await Eventually.TrueAsync(() => agent.RegisteredLinks == 1, "registration");
        var expires = DateTimeOffset.UtcNow.AddSeconds(30).ToUnixTimeMilliseconds();
        await _tier2.SendExpectAsync(new Expect(12, WireEndpoint.From(Loopback, 0), expires, "sha256", [KeyValuePair.Create("n", "1")]));
        Assert.That(await seen.Task.WaitAsync(TimeSpan.FromSeconds(10)), Is.EqualTo(12UL));

        var answer = await ClaimAsync(agent, Ticket(ticketId: 12, expiresUnixMs: expires));

        Assert.That(answer!.Type, Is.EqualTo(FrameType.ClaimOk));
    }

    [Test]
    public async Task Strict_mode_waits_briefly_for_an_expect_that_arrives_after_the_client()
    {
        ClaimInfo? info = null;
        await using var agent = NewAgent(o => o.RequireExpect = true, (c, ct) =>
        {
            info = c.Claim;
            return ValueTask.CompletedTask;
        });
        await agent.StartAsync();
        await Eventually.TrueAsync(() => agent.RegisteredLinks == 1, "registration");
        var expires = DateTimeOffset.UtcNow.AddSeconds(30).ToUnixTimeMilliseconds();
        await using var peer = await TestPeer.ConnectAsync(agent.LocalEndPoint);
        await peer.SendAsync(5, new Claim(Ticket(ticketId: 13, expiresUnixMs: expires)));
        await Task.Delay(50);

        await _tier2.SendExpectAsync(new Expect(13, WireEndpoint.From(Loopback, 0), expires, "primes", []));
        var answer = await peer.NextAsync();

        Assert.That(answer!.Type, Is.EqualTo(FrameType.ClaimOk));
        await Eventually.TrueAsync(() => info is not null, "the handler");
        Assert.That(info!.Kind, Is.EqualTo("primes"));
        Assert.That(info.Expected, Is.True);
    }

    [Test]
    public async Task Client_that_sends_no_claim_is_closed_after_the_deadline()
    {
        await using var agent = NewAgent(o => o.ClaimTimeout = TimeSpan.FromMilliseconds(200));
        await agent.StartAsync();
        await using var peer = await TestPeer.ConnectAsync(agent.LocalEndPoint);

        Assert.That(await peer.ClosedAsync(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(_handlerRuns, Is.Zero);
    }

    [Test]
    public async Task Client_whose_first_frame_is_not_a_claim_never_reaches_the_handler()
    {
        await using var agent = NewAgent();
        await agent.StartAsync();
        await using var peer = await TestPeer.ConnectAsync(agent.LocalEndPoint);

        await peer.SendAsync(1, new TaskRequest("c", "echo", [], "", Encoding.UTF8.GetBytes("x")));

        Assert.That(await peer.ClosedAsync(), Is.True);
        Assert.That(_handlerRuns, Is.Zero);
    }

    [Test]
    public async Task Sample_app_runs_tasks_on_the_claimed_connection_and_reports_its_load()
    {
        var app = new SampleApp();
        var o = new AppServerAgentOptions { ServerId = "app-1", Capacity = 4 };
        o.ControlEndPoints.Add(_tier2.EndPoint);
        await using var agent = SampleApp.CreateAgent(app, o, _keys);
        await agent.StartAsync();
        await using var peer = await TestPeer.ConnectAsync(agent.LocalEndPoint);
        Assert.That((await ClaimAsync(agent, Ticket(), peer))!.Type, Is.EqualTo(FrameType.ClaimOk));

        await peer.SendAsync(1, new TaskRequest("c", "sleep", [], "", Encoding.UTF8.GetBytes("400")));
        await peer.SendAsync(2, new TaskRequest("c", "sha256", [], "", Encoding.UTF8.GetBytes("abc")));
        await peer.SendAsync(3, new TaskRequest("c", "primes", [KeyValuePair.Create("n", "100")], "", ReadOnlyMemory<byte>.Empty));
        await peer.SendAsync(4, new TaskRequest("c", "echo", [], "", Encoding.UTF8.GetBytes("ping")));
        await peer.SendAsync(5, new TaskRequest("c", "nope", [], "", ReadOnlyMemory<byte>.Empty));

        var results = new Dictionary<ulong, TaskResult>();
        Heartbeat? busy = null;
        while (results.Count < 4)
        {
            var f = await peer.NextAsync();
            results[f!.RequestId] = TaskResult.Read(f.Payload);
        }

        // The sleep task is still running: a heartbeat now reports it.
        while (busy is null)
        {
            var hb = Heartbeat.Read((await _tier2.NextAsync(FrameType.Heartbeat)).Payload);
            if (hb.ActiveTasks == 1)
            {
                busy = hb;
            }
        }

        var last = await peer.NextAsync();
        results[last!.RequestId] = TaskResult.Read(last.Payload);

        Assert.Multiple(() =>
        {
            Assert.That(Encoding.UTF8.GetString(results[2].Output.Span), Is.EqualTo("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
            Assert.That(Encoding.UTF8.GetString(results[3].Output.Span), Is.EqualTo("25"));
            Assert.That(Encoding.UTF8.GetString(results[4].Output.Span), Is.EqualTo("ping"));
            Assert.That(results[5].Status, Is.EqualTo((ushort)SampleTaskStatus.UnknownKind));
            Assert.That(results[1].Status, Is.EqualTo((ushort)SampleTaskStatus.Ok));
            Assert.That(busy.LoadPermille, Is.EqualTo(250));
        });
    }
}
