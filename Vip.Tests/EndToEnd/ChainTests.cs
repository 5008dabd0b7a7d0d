using System.Globalization;
using System.Net;
using System.Text;
using Vip.Agent;
using Vip.Client;
using Vip.Daemons.Roles;
using Vip.Protocol;

namespace Vip.Tests.EndToEnd;

/// <summary>
/// The whole chain in one process (<see cref="DemoChain"/>): VIP box → two tier-1 → two tier-2 (LiteDB) → five
/// sample app servers, clients with stored attributes sending from their own 127.0.0.x addresses.
/// </summary>
public class ChainTests
{
    // The requirements the tests use, with the same rule written as a predicate over a server's attributes.
    private static readonly (string Requirement, Func<IReadOnlyDictionary<string, string>, bool> Matches)[] Requirements =
    [
        ("", _ => true),
        ("region=eu", a => a["region"] == "eu"),
        ("gpu=yes", a => a["gpu"] == "yes"),
        ("cpu>=16", a => int.Parse(a["cpu"], CultureInfo.InvariantCulture) >= 16),
        ("region=us, cpu>=8", a => a["region"] == "us" && int.Parse(a["cpu"], CultureInfo.InvariantCulture) >= 8),
        ("region in (eu,us), gpu!=yes", a => a["gpu"] != "yes"),
    ];

    private static string PoolOf(DemoClientSpec c) => c.Attributes?.GetValueOrDefault("pool") ?? "std";

    private static bool Allowed(DemoClientSpec client, DemoServerSpec server, Func<IReadOnlyDictionary<string, string>, bool> matches)
        => server.Attributes["pool"] == PoolOf(client) && matches(server.Attributes);

    [Test]
    public async Task Hundreds_of_tasks_from_varied_clients_each_run_on_a_matching_server_over_tcp_and_udp()
    {
        await using var chain = await DemoChain.StartAsync();
        var clients = chain.Clients.ToDictionary(c => c.Id, c => new VipClient(new VipClientOptions { Vip = chain.VipEndPoint, LocalAddress = c.Address }));
        var udpClients = chain.Clients.ToDictionary(c => c.Id, c => new VipClient(new VipClientOptions { Vip = chain.VipUdpEndPoint, LocalAddress = c.Address, Transport = VipTransport.Udp }));
        try
        {
            var jobs = new List<(DemoClientSpec Client, int Requirement, int N)>();
            for (var i = 0; i < 240; i++)
            {
                jobs.Add((chain.Clients[i % chain.Clients.Count], i % Requirements.Length, i));
            }

            var landed = new System.Collections.Concurrent.ConcurrentBag<(DemoClientSpec Client, int Requirement, string Server, bool Udp)>();
            var rejected = new System.Collections.Concurrent.ConcurrentBag<(DemoClientSpec Client, int Requirement, RejectCode Code)>();
            await Parallel.ForEachAsync(jobs, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (job, ct) =>
            {
                var (requirement, _) = Requirements[job.Requirement];
                var body = $"task-{job.N}";
                var task = new TaskRequest(job.Client.Id, job.N % 3 == 0 ? "sha256" : "echo", [], requirement, Encoding.UTF8.GetBytes(body));
                try
                {
                    if (job.N % 4 == 3)
                    {
                        var assignment = await udpClients[job.Client.Id].SubmitAsync(task, ct);
                        landed.Add((job.Client, job.Requirement, assignment.ServerId, true));
                        return;
                    }

                    var run = await clients[job.Client.Id].RunAsync(task, ct);
                    var expected = task.Kind == "sha256" ? SampleTasks.Sha256Hex(task.Body.Span) : body;
                    Assert.That(Encoding.UTF8.GetString(run.Result.Output.Span), Is.EqualTo(expected), "the app server computed the task");
                    landed.Add((job.Client, job.Requirement, run.Assignment.ServerId, false));
                }
                catch (VipRejectedException ex)
                {
                    rejected.Add((job.Client, job.Requirement, ex.Code));
                }
            });

            var specs = chain.Servers.ToDictionary(s => s.Spec.Id, s => s.Spec);
            foreach (var (client, requirement, server, udp) in landed)
            {
                Assert.That(Allowed(client, specs[server], Requirements[requirement].Matches), Is.True,
                    $"{client.Id} ({PoolOf(client)}) with '{Requirements[requirement].Requirement}' landed on {server} (udp {udp})");
            }

            foreach (var (client, requirement, code) in rejected)
            {
                Assert.That(code, Is.EqualTo(RejectCode.NoMatchingServer));
                Assert.That(specs.Values.Any(s => Allowed(client, s, Requirements[requirement].Matches)), Is.False,
                    $"{client.Id} with '{Requirements[requirement].Requirement}' was refused though a server matches");
            }

            Assert.That(landed.Count(l => !l.Udp), Is.GreaterThan(100));
            Assert.That(landed.Count(l => l.Udp), Is.GreaterThan(40));
            Assert.That(landed.Select(l => l.Server).Distinct().Count(), Is.EqualTo(specs.Count), "every server got work");
            Assert.That(chain.Servers.Sum(s => s.App.CompletedTasks), Is.EqualTo(landed.Count(l => !l.Udp)));
        }
        finally
        {
            foreach (var c in clients.Values.Concat(udpClients.Values))
            {
                await c.DisposeAsync();
            }
        }
    }

    [Test]
    public async Task A_client_presenting_its_ticket_from_another_address_is_denied()
    {
        await using var chain = await DemoChain.StartAsync();
        var bob = chain.Clients.Single(c => c.Id == "bob");
        await using var submitter = new VipClient(new VipClientOptions { Vip = chain.VipEndPoint, LocalAddress = bob.Address });
        await using var thief = new VipClient(new VipClientOptions { Vip = chain.VipEndPoint, LocalAddress = IPAddress.Parse("127.0.0.199") });

        var assignment = await submitter.SubmitAsync(new TaskRequest("bob", "echo", [], "", "x"u8.ToArray()));
        var ex = Assert.ThrowsAsync<VipClaimDeniedException>(() => thief.ClaimAsync(assignment));

        Assert.That(ex!.Reason, Is.EqualTo(ClaimDenyReason.WrongClient), "the ticket names the address tier-1 saw: the client's own");
        await using var session = await submitter.ClaimAsync(assignment);
        Assert.That(session.ServerId, Is.EqualTo(assignment.ServerId));
    }

    [Test]
    public async Task A_stopped_tier2_is_failed_over_and_a_stopped_app_server_gets_no_more_tasks()
    {
        await using var chain = await DemoChain.StartAsync(heartbeatInterval: TimeSpan.FromMilliseconds(100));
        var bob = chain.Clients.Single(c => c.Id == "bob");
        await using var client = new VipClient(new VipClientOptions { Vip = chain.VipEndPoint, LocalAddress = bob.Address });

        await chain.Tier2[0].DisposeAsync();
        for (var i = 0; i < 20; i++)
        {
            var run = await client.RunAsync(new TaskRequest("bob", "echo", [], "region=us", Encoding.UTF8.GetBytes($"a{i}")));
            Assert.That(run.Assignment.ServerId, Does.StartWith("us-"));
        }

        var stopped = chain.Servers.Single(s => s.Spec.Id == "us-small");
        await stopped.Agent.DisposeAsync();
        await Task.Delay(TimeSpan.FromMilliseconds(100 * 3 + 300)); // its heartbeat timeout, and some
        for (var i = 0; i < 40; i++)
        {
            var assignment = await client.SubmitAsync(new TaskRequest("bob", "echo", [], "region=us", default));
            Assert.That(assignment.ServerId, Is.EqualTo("us-large"), "the stopped server left the candidate set");
        }
    }
}
