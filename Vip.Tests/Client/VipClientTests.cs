using System.Net;
using System.Net.Sockets;
using System.Text;
using Vip.Client;
using Vip.Dispatch.Tier1;
using Vip.Protocol;
using Vip.Tests.Dispatch.Tier1;

namespace Vip.Tests.Client;

[Parallelizable(ParallelScope.All)]
public class VipClientTests
{
    private static readonly IPAddress ClientAddress = IPAddress.Parse("127.0.0.4");

    private static VipClientOptions Options(EndPoint vip, Action<VipClientOptions>? configure = null)
    {
        var o = new VipClientOptions { Vip = vip, LocalAddress = ClientAddress, BaseBackoff = TimeSpan.FromMilliseconds(5), RequestTimeout = TimeSpan.FromSeconds(3) };
        configure?.Invoke(o);
        return o;
    }

    [Test]
    public async Task Submit_returns_the_assignment_of_the_redirect()
    {
        await using var t2 = new FakeTier2("a");
        await using var tier1 = await Tier1ServerTests.StartTier1Async([t2]);
        await using var client = new VipClient(Options(tier1.LocalEndPoint));

        var assignment = await client.SubmitAsync(Tasks.Make("alice", "sha256"));

        Assert.That(assignment.ServerId, Is.EqualTo("a"));
        Assert.That(assignment.Server, Is.EqualTo(t2.AppServer));
        Assert.That(assignment.ExpiresAt, Is.GreaterThan(DateTimeOffset.UtcNow));
        Assert.That(Encoding.UTF8.GetString(assignment.Ticket.Span), Does.Contain($"|alice|{ClientAddress}:"), "tier-2 saw the client's own address");
    }

    [Test]
    public async Task Many_concurrent_submissions_share_one_pipelined_connection()
    {
        await using var t2 = new FakeTier2("a");
        await using var tier1 = await Tier1ServerTests.StartTier1Async([t2]);
        await using var client = new VipClient(Options(tier1.LocalEndPoint));

        var results = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => client.SubmitAsync(Tasks.Make($"c{i}"))));

        Assert.That(results.Select(r => Encoding.UTF8.GetString(r.Ticket.Span).Split('|')[1]), Is.EquivalentTo(Enumerable.Range(0, 200).Select(i => $"c{i}")));
        Assert.That(tier1.ConnectionCount, Is.EqualTo(1));
    }

    [Test]
    public async Task A_rejection_without_retry_after_is_returned_after_one_attempt()
    {
        await using var t2 = new FakeTier2("a") { Behavior = _ => new Reject(RejectCode.NoMatchingServer, 0, "no server has gpu=yes") };
        await using var tier1 = await Tier1ServerTests.StartTier1Async([t2]);
        await using var client = new VipClient(Options(tier1.LocalEndPoint));

        var ex = Assert.ThrowsAsync<VipRejectedException>(() => client.SubmitAsync(Tasks.Make()));

        Assert.That(ex!.Code, Is.EqualTo(RejectCode.NoMatchingServer));
        Assert.That(ex.Message, Does.Contain("gpu=yes"));
        Assert.That(t2.Received, Has.Count.EqualTo(1), "not retried blindly");
    }

    [Test]
    public async Task A_rejection_with_a_short_retry_after_is_retried_up_to_the_attempt_limit()
    {
        await using var t2 = new FakeTier2("a") { Behavior = _ => new Reject(RejectCode.Overloaded, 20, "all full") };
        await using var tier1 = await Tier1ServerTests.StartTier1Async([t2]);
        await using var client = new VipClient(Options(tier1.LocalEndPoint, o => o.MaxAttempts = 3));

        var result = await client.TrySubmitAsync(Tasks.Make());

        Assert.That(result.IsAssigned, Is.False);
        Assert.That(result.Rejection!.Code, Is.EqualTo(RejectCode.Overloaded));
        Assert.That(result.Attempts, Is.EqualTo(3));
        Assert.That(t2.Received, Has.Count.EqualTo(3));
    }

    [Test]
    public async Task A_retry_after_longer_than_the_cap_is_not_waited_for()
    {
        await using var t2 = new FakeTier2("a") { Behavior = _ => new Reject(RejectCode.Overloaded, 60_000, "all full") };
        await using var tier1 = await Tier1ServerTests.StartTier1Async([t2]);
        await using var client = new VipClient(Options(tier1.LocalEndPoint));

        var result = await client.TrySubmitAsync(Tasks.Make());

        Assert.That(result.Attempts, Is.EqualTo(1));
    }

    [Test]
    public async Task Unknown_client_is_never_retried()
    {
        await using var t2 = new FakeTier2("a") { Behavior = _ => new Reject(RejectCode.UnknownClient, 100, "who?") };
        await using var tier1 = await Tier1ServerTests.StartTier1Async([t2]);
        await using var client = new VipClient(Options(tier1.LocalEndPoint));

        Assert.ThrowsAsync<VipRejectedException>(() => client.SubmitAsync(Tasks.Make()));
        Assert.That(t2.Received, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task A_broken_vip_connection_is_replaced_and_the_task_retried()
    {
        await using var t2 = new FakeTier2("a");
        await using var tier1 = await Tier1ServerTests.StartTier1Async([t2]);
        // A stand-in VIP that drops the first connection after reading the task, and relays the others.
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(8);
        var relays = Task.Run(async () =>
        {
            var first = await listener.AcceptAsync();
            await first.ReceiveAsync(new byte[4096], SocketFlags.None);
            first.Close(0);
            var second = await listener.AcceptAsync();
            var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await upstream.ConnectAsync(tier1.LocalEndPoint);
            await Task.WhenAny(Pump(second, upstream), Pump(upstream, second));
        });
        await using var client = new VipClient(Options(listener.LocalEndPoint!));

        var result = await client.TrySubmitAsync(Tasks.Make("bob"));

        Assert.That(result.IsAssigned, Is.True);
        Assert.That(result.Attempts, Is.EqualTo(2));
    }

    [Test]
    public async Task When_nothing_listens_the_client_gives_up_after_its_attempts()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var dead = (IPEndPoint)probe.LocalEndPoint!;
        probe.Dispose();
        await using var client = new VipClient(Options(dead, o => o.MaxAttempts = 2));

        var ex = Assert.ThrowsAsync<VipUnreachableException>(() => client.SubmitAsync(Tasks.Make()));

        Assert.That(ex!.InnerException, Is.InstanceOf<SocketException>());
    }

    [Test]
    public async Task Submission_honours_cancellation()
    {
        await using var t2 = new FakeTier2("a") { Behavior = _ => null };
        await using var tier1 = await Tier1ServerTests.StartTier1Async([t2], o => o.RequestTimeout = TimeSpan.FromSeconds(30));
        await using var client = new VipClient(Options(tier1.LocalEndPoint, o => o.RequestTimeout = TimeSpan.FromSeconds(30)));
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        Assert.That(async () => await client.SubmitAsync(Tasks.Make(), cts.Token), Throws.InstanceOf<OperationCanceledException>());
    }

    [Test]
    public async Task Run_claims_the_assigned_server_from_the_client_address_and_returns_its_result()
    {
        await using var app = new FakeAppServer("app-1");
        await using var t2 = new FakeTier2("a") { AppServer = app.EndPoint };
        await using var tier1 = await Tier1ServerTests.StartTier1Async([t2]);
        await using var client = new VipClient(Options(tier1.LocalEndPoint));

        var run = await client.RunAsync(Tasks.Make("carol", "echo", body: "hello"));

        Assert.That(run.Result.Status, Is.EqualTo((ushort)0));
        Assert.That(Encoding.UTF8.GetString(run.Result.Output.Span), Is.EqualTo("app-1:echo:hello"));
        Assert.That(run.Assignment.Server, Is.EqualTo(app.EndPoint));
        Assert.That(app.Claims.Single().Peer.Address, Is.EqualTo(ClientAddress), "the app server sees the client's own address");
        Assert.That(Encoding.UTF8.GetString(app.Claims.Single().Ticket), Is.EqualTo(Encoding.UTF8.GetString(run.Assignment.Ticket.Span)));
    }

    [Test]
    public async Task A_denied_claim_surfaces_as_claim_denied()
    {
        await using var app = new FakeAppServer("app-1");
        await using var t2 = new FakeTier2("a") { AppServer = app.EndPoint };
        t2.Behavior = f => t2.DefaultRedirect(f) with { Ticket = "bad ticket"u8.ToArray() };
        await using var tier1 = await Tier1ServerTests.StartTier1Async([t2]);
        await using var client = new VipClient(Options(tier1.LocalEndPoint));

        var ex = Assert.ThrowsAsync<VipClaimDeniedException>(() => client.RunAsync(Tasks.Make()));

        Assert.That(ex!.Reason, Is.EqualTo(ClaimDenyReason.BadSignature));
    }

    [Test]
    public async Task A_dead_app_server_leads_to_a_new_submission()
    {
        await using var app = new FakeAppServer("app-live");
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var dead = (IPEndPoint)probe.LocalEndPoint!;
        probe.Dispose();
        var calls = 0;
        await using var t2 = new FakeTier2("a");
        t2.Behavior = f => Interlocked.Increment(ref calls) == 1 ? t2.DefaultRedirect(f) with { Server = WireEndpoint.From(dead) } : t2.DefaultRedirect(f) with { Server = WireEndpoint.From(app.EndPoint) };
        await using var tier1 = await Tier1ServerTests.StartTier1Async([t2]);
        await using var client = new VipClient(Options(tier1.LocalEndPoint));

        var run = await client.RunAsync(Tasks.Make(body: "x"));

        Assert.That(Encoding.UTF8.GetString(run.Result.Output.Span), Is.EqualTo("app-live:echo:x"));
        Assert.That(run.Attempts, Is.EqualTo(2));
    }

    [Test]
    public async Task Udp_submission_gets_the_same_assignment()
    {
        await using var t2 = new FakeTier2("a");
        await using var tier1 = await Tier1ServerTests.StartTier1Async([t2], o => o.UdpListen = new IPEndPoint(IPAddress.Loopback, 0));
        await using var client = new VipClient(Options(tier1.UdpLocalEndPoint!, o => o.Transport = VipTransport.Udp));

        var results = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => client.SubmitAsync(Tasks.Make($"u{i}"))));

        Assert.That(results.All(r => r.ServerId == "a"), Is.True);
        Assert.That(t2.Received.Select(f => f.Client.ToIPEndPoint().Address).Distinct().Single(), Is.EqualTo(ClientAddress));
    }

    [Test]
    public async Task The_load_generator_counts_every_answer()
    {
        await using var t2 = new FakeTier2("a");
        var calls = 0;
        t2.Behavior = f => Interlocked.Increment(ref calls) % 10 == 0 ? new Reject(RejectCode.NoMatchingServer, 0, "none") : t2.DefaultRedirect(f);
        await using var tier1 = await Tier1ServerTests.StartTier1Async([t2]);

        var report = await VipLoad.RunAsync(new VipLoadOptions
        {
            Vip = tier1.LocalEndPoint,
            Tasks = [Tasks.Make("l1"), Tasks.Make("l2")],
            Connections = 2,
            Pipeline = 16,
            TotalTasks = 1000,
            Duration = TimeSpan.FromSeconds(20),
        });

        Assert.That(report.Sent, Is.EqualTo(1000));
        Assert.That(report.Redirects + report.Rejects.GetValueOrDefault(RejectCode.NoMatchingServer), Is.EqualTo(1000));
        Assert.That(report.Rejects[RejectCode.NoMatchingServer], Is.EqualTo(100));
        Assert.That(report.Lost, Is.Zero);
        Assert.That(report.P99, Is.GreaterThanOrEqualTo(report.P50));
    }

    private static async Task Pump(Socket from, Socket to)
    {
        var buffer = new byte[8192];
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None);
                if (n == 0)
                {
                    return;
                }

                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
            }
        }
        catch (SocketException)
        {
        }
    }
}
