using System.Net;
using System.Text;
using Vip.Client;
using Vip.Dispatch.Tier1;
using Vip.Forwarding;
using Vip.Protocol;
using Vip.Tests.Client;

namespace Vip.Tests.EndToEnd;

/// <summary>
/// The front half of the chain with the real VIP box and real tier-1 daemons in one process: client → VIP box
/// (PROXY v2 towards tier-1, PING health checks) → two tier-1 → tier-2 stand-ins → app server stand-in.
/// </summary>
[Parallelizable(ParallelScope.All)]
public class VipChainTests
{
    private static readonly IPAddress DaemonAddress = IPAddress.Parse("127.0.0.1");

    private sealed class Front : IAsyncDisposable
    {
        public required VipForwarder Vip { get; init; }
        public required Tier1Server[] Tier1 { get; init; }
        public required FakeTier2[] Tier2 { get; init; }
        public required FakeAppServer App { get; init; }

        public async ValueTask DisposeAsync()
        {
            await Vip.DisposeAsync();
            foreach (var t in Tier1)
            {
                await t.DisposeAsync();
            }

            foreach (var t in Tier2)
            {
                await t.DisposeAsync();
            }

            await App.DisposeAsync();
        }
    }

    private static async Task<Front> StartAsync()
    {
        var app = new FakeAppServer("app-1", DaemonAddress);
        var tier2 = new[] { new FakeTier2("t2-a", DaemonAddress) { AppServer = app.EndPoint }, new FakeTier2("t2-b", DaemonAddress) { AppServer = app.EndPoint } };
        var tier1 = new Tier1Server[2];
        for (var i = 0; i < 2; i++)
        {
            var o = new Tier1Options
            {
                Id = $"t1-{i}",
                Listen = new IPEndPoint(DaemonAddress, 0),
                UdpListen = new IPEndPoint(DaemonAddress, 0),
                PingInterval = TimeSpan.FromMilliseconds(100),
                DrainTimeout = TimeSpan.FromMilliseconds(100),
            };
            o.Tier2.Add(tier2[0].EndPoint);
            o.Tier2.Add(tier2[1].EndPoint);
            o.TrustedProxies.Add(IPNetwork.Parse("127.0.0.1/32")); // the VIP box connects from 127.0.0.1
            tier1[i] = new Tier1Server(o);
            await tier1[i].StartAsync(CancellationToken.None);
        }

        var vo = new ForwarderOptions { Listen = "127.0.0.1:0", UdpListen = "127.0.0.1:0", ProxyProtocol = true, DrainTimeout = TimeSpan.FromMilliseconds(100) };
        vo.HealthCheck.Mode = HealthCheckMode.Ping;
        vo.HealthCheck.Interval = TimeSpan.FromMilliseconds(100);
        vo.HealthCheck.Rise = 1;
        vo.HealthCheck.Fall = 1;
        foreach (var t in tier1)
        {
            vo.Backends.Add(new BackendOptions { Address = t.LocalEndPoint.ToString() });
            vo.UdpBackends.Add(new BackendOptions { Address = t.UdpLocalEndPoint!.ToString() });
        }

        var vip = new VipForwarder(vo);
        await vip.StartAsync();
        var front = new Front { Vip = vip, Tier1 = tier1, Tier2 = tier2, App = app };
        Assert.That(await Tasks.WaitUntilAsync(() => tier1.All(t => t.GetTier2Status().All(s => s.Available)) && vip.GetBackends().All(b => b.IsUp)), Is.True, "chain did not come up");
        return front;
    }

    [Test]
    public async Task Tasks_through_the_vip_reach_the_app_server_which_sees_the_clients_own_address()
    {
        await using var front = await StartAsync();
        var clients = new[] { IPAddress.Parse("127.0.0.21"), IPAddress.Parse("127.0.0.22") };
        foreach (var address in clients)
        {
            await using var client = new VipClient(new VipClientOptions { Vip = front.Vip.TcpEndPoints[0], LocalAddress = address });
            for (var i = 0; i < 5; i++)
            {
                var run = await client.RunAsync(Tasks.Make($"c-{address}", "echo", body: $"n{i}"));
                Assert.That(Encoding.UTF8.GetString(run.Result.Output.Span), Is.EqualTo($"app-1:echo:n{i}"));
            }
        }

        var forwardedFrom = front.Tier2.SelectMany(t => t.Received).Select(f => f.Client.ToIPEndPoint().Address).Distinct().ToArray();
        Assert.That(forwardedFrom, Is.EquivalentTo(clients), "tier-2 got the clients' addresses, not the VIP's");
        Assert.That(front.App.Claims.Select(c => c.Peer.Address).Distinct(), Is.EquivalentTo(clients));
        Assert.That(front.Tier2.SelectMany(t => t.Received).Select(f => f.Tier1Id).Distinct().Count(), Is.EqualTo(2), "the VIP box spread the connections over both tier-1");
    }

    [Test]
    public async Task Udp_tasks_through_the_vip_carry_the_clients_address()
    {
        await using var front = await StartAsync();
        var address = IPAddress.Parse("127.0.0.23");
        await using var client = new VipClient(new VipClientOptions { Vip = front.Vip.UdpEndPoint!, LocalAddress = address, Transport = VipTransport.Udp });

        for (var i = 0; i < 10; i++)
        {
            var assignment = await client.SubmitAsync(Tasks.Make("udp-client"));
            Assert.That(assignment.Server, Is.EqualTo(front.App.EndPoint));
        }

        Assert.That(front.Tier2.SelectMany(t => t.Received).Select(f => f.Client.ToIPEndPoint().Address).Distinct().Single(), Is.EqualTo(address));
    }

    [Test]
    public async Task When_a_tier1_stops_the_vip_skips_it_and_tasks_keep_succeeding()
    {
        await using var front = await StartAsync();
        var address = IPAddress.Parse("127.0.0.24");
        await front.Tier1[0].StopAsync(CancellationToken.None);
        Assert.That(await Tasks.WaitUntilAsync(() => front.Vip.GetBackends().Count(b => b.IsUp) == 1), Is.True);

        for (var i = 0; i < 20; i++)
        {
            // A fresh client each time: a new VIP connection, so the round robin is exercised.
            await using var client = new VipClient(new VipClientOptions { Vip = front.Vip.TcpEndPoints[0], LocalAddress = address });
            var assignment = await client.SubmitAsync(Tasks.Make($"c{i}"));
            Assert.That(assignment.ServerId, Does.StartWith("t2-"));
        }

        Assert.That(front.Tier2.SelectMany(t => t.Received).Select(f => f.Tier1Id).Distinct().Single(), Is.EqualTo("t1-1"));
    }
}
