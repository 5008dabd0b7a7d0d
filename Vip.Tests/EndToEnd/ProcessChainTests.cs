using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Vip.Client;
using Vip.Protocol;
using Vip.Tests.Client;
using Vip.Tests.Hosting;

namespace Vip.Tests.EndToEnd;

/// <summary>
/// The chain as separate <c>vipd</c> processes on loopback: VIP box, two tier-1, two tier-2, three app servers with
/// different attributes. Every process is stopped by its pid at the end.
/// </summary>
[NonParallelizable]
public class ProcessChainTests
{
    private static readonly string[] Servers = ["app-eu", "app-us", "app-us-big"];

    private static IPEndPoint FreePort(IPAddress address)
    {
        using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        tcp.Bind(new IPEndPoint(address, 0));
        var port = ((IPEndPoint)tcp.LocalEndPoint!).Port;
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(address, port)); // the same port must be free for UDP too
        return new IPEndPoint(address, port);
    }

    private sealed class Chain : IDisposable
    {
        public List<VipdProcess> Processes { get; } = [];
        public VipdProcess[] Tier1 { get; set; } = [];
        public VipdProcess[] Apps { get; set; } = [];
        public IPEndPoint Vip { get; set; } = null!;
        public string Directory { get; } = Path.Combine(Path.GetTempPath(), "vip-e2e-" + Guid.NewGuid().ToString("N")[..10]);

        public VipdProcess Start(params string[] args)
        {
            var p = VipdProcess.Start(args);
            Processes.Add(p);
            return p;
        }

        public string Logs() => string.Join("\n", Processes.Select(p => $"--- pid {p.Id}\n{p.StandardError}"));

        public void Dispose()
        {
            foreach (var p in Processes)
            {
                p.Dispose(); // kills by pid if still running
            }

            try
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<Chain> StartChainAsync()
    {
        var chain = new Chain();
        System.IO.Directory.CreateDirectory(chain.Directory);
        var key = Path.Combine(chain.Directory, "tickets.key");
        var keygen = await VipdProcess.RunAsync(["keygen", "--out", key], TimeSpan.FromSeconds(60));
        Assert.That(keygen.ExitCode, Is.Zero, keygen.StdErr);
        var daemon = IPAddress.Loopback;
        var tier2 = Enumerable.Range(0, 2).Select(_ => (Listen: FreePort(daemon), Control: FreePort(daemon))).ToArray();
        for (var i = 0; i < tier2.Length; i++)
        {
            chain.Start("tier2", "--id", $"t2-{i}", "--listen", tier2[i].Listen.ToString(), "--control", tier2[i].Control.ToString(),
                "--db", Path.Combine(chain.Directory, $"t2-{i}.db"), "--ticket-key-file", key);
        }

        var controls = string.Join(',', tier2.Select(t => t.Control.ToString()));
        (string Region, string Cpu)[] attrs = [("eu", "8"), ("us", "4"), ("us", "16")];
        chain.Apps = Servers.Select((id, i) => chain.Start("app", "--id", id, "--listen", FreePort(daemon).ToString(), "--control", controls,
            "--attr", $"region={attrs[i].Region}", "--attr", $"cpu={attrs[i].Cpu}", "--capacity", "64", "--ticket-key-file", key)).ToArray();
        var tier1 = Enumerable.Range(0, 2).Select(_ => FreePort(daemon)).ToArray();
        chain.Tier1 = tier1.Select((ep, i) => chain.Start("tier1", "--id", $"t1-{i}", "--listen", ep.ToString(), "--udp-listen", ep.ToString(),
            "--tier2", string.Join(',', tier2.Select(t => t.Listen.ToString())), "--trusted-proxies", "127.0.0.1/32")).ToArray();
        chain.Vip = FreePort(daemon);
        chain.Start("vip", "--listen", chain.Vip.ToString(), "--udp-listen", chain.Vip.ToString(), "--backends", string.Join(',', tier1.Select(t => t.ToString())),
            "--proxy-protocol", "true", "--health", "Ping", "--health-interval", "00:00:00.200");

        // Ready when every app server can be chosen through the VIP address.
        await using var probe = new VipClient(new VipClientOptions { Vip = chain.Vip, LocalAddress = IPAddress.Parse("127.0.0.60"), MaxAttempts = 1, RequestTimeout = TimeSpan.FromSeconds(2) });
        // Each tier-2 learns of the app servers on its own, and tier-1 hashes client ids over the tier-2s: the
        // chain is ready when every server has been chosen for several distinct client ids (so, almost surely,
        // through both tier-2s), including the ids the tests use.
        var clients = new[] { "cli", "probe-a", "probe-b", "probe-c", "probe-d", "probe-e", "probe-f", "probe-g" };
        var seenBy = new Dictionary<string, HashSet<string>>();
        var seen = new HashSet<string>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (seenBy.Count(kv => kv.Value.Count == clients.Length) < Servers.Length && DateTime.UtcNow < deadline)
        {
            try
            {
                foreach (var client in clients)
                {
                    foreach (var requirement in new[] { "region=eu", "region=us, cpu<8", "cpu>=16" })
                    {
                        var r = await probe.TrySubmitAsync(Tasks.Make(client, requirement: requirement));
                        if (r.Assignment is { } a)
                        {
                            seen.Add(a.ServerId);
                            (seenBy.TryGetValue(a.ServerId, out var set) ? set : seenBy[a.ServerId] = []).Add(client);
                        }
                    }
                }
            }
            catch (VipUnreachableException)
            {
            }

            await Task.Delay(100);
        }

        Assert.That(seen, Has.Count.EqualTo(Servers.Length), () => "the chain did not come up:\n" + chain.Logs());

        // And both tier-2s have ended their start-up warm-up: a task nothing matches gets the final answer.
        var final = 0;
        while (final < clients.Length && DateTime.UtcNow < deadline)
        {
            final = 0;
            foreach (var client in clients)
            {
                var r = await probe.TrySubmitAsync(Tasks.Make(client, requirement: "cpu>=64"));
                final += r.Rejection?.Code == RejectCode.NoMatchingServer ? 1 : 0;
            }

            await Task.Delay(100);
        }

        Assert.That(final, Is.EqualTo(clients.Length), () => "the tier-2 daemons did not end their warm-up:\n" + chain.Logs());
        return chain;
    }

    [Test]
    public async Task Separate_vipd_processes_run_tasks_on_matching_servers_and_survive_a_tier1_stopping()
    {
        using var chain = await StartChainAsync();

        // vipd submit --run --json: a computed result from a matching app server.
        var submit = await VipdProcess.RunAsync(["submit", "--vip", chain.Vip.ToString(), "--client", "cli", "--kind", "primes", "--arg", "1000",
            "--require", "region=us, cpu>=8", "--run", "--json", "--local", "127.0.0.61"], TimeSpan.FromSeconds(60));
        Assert.That(submit.ExitCode, Is.Zero, submit.StdErr + submit.StdOut);
        using (var doc = JsonDocument.Parse(submit.StdOut))
        {
            Assert.That(doc.RootElement.GetProperty("status").GetString(), Is.EqualTo("redirect"));
            Assert.That(doc.RootElement.GetProperty("server").GetString(), Is.EqualTo("app-us-big"));
            Assert.That(doc.RootElement.GetProperty("address").GetString(), Does.StartWith("127.0.0.1:"));
            Assert.That(doc.RootElement.GetProperty("result").GetProperty("output").GetString()!.Trim(), Is.EqualTo("168"), "there are 168 primes up to 1000");
        }

        var rejected = await VipdProcess.RunAsync(["submit", "--vip", chain.Vip.ToString(), "--client", "cli", "--kind", "echo", "--require", "cpu>=64", "--json"], TimeSpan.FromSeconds(60));
        Assert.That(rejected.ExitCode, Is.Not.Zero);
        Assert.That(rejected.StdOut, Does.Contain("\"status\":\"reject\"").And.Contain("\"code\":\"NoMatchingServer\""));

        // Hundreds of tasks from several client addresses, each on a matching server; TCP and UDP.
        var expected = new Dictionary<string, string[]> { ["region=eu"] = ["app-eu"], ["region=us"] = ["app-us", "app-us-big"], ["cpu>=8"] = ["app-eu", "app-us-big"], [""] = Servers };
        await RunManyAsync(chain.Vip, expected, 120);

        // Stop one tier-1: the VIP box skips it, tasks keep succeeding over fresh connections.
        chain.Tier1[0].Terminate();
        Assert.That(await chain.Tier1[0].WaitForExitAsync(TimeSpan.FromSeconds(30)), Is.Zero);
        for (var i = 0; i < 20; i++)
        {
            await using var client = new VipClient(new VipClientOptions { Vip = chain.Vip, LocalAddress = IPAddress.Parse("127.0.0.70") });
            var run = await client.RunAsync(Tasks.Make($"after-{i}", "echo", "region=eu", $"b{i}"));
            Assert.That(run.Assignment.ServerId, Is.EqualTo("app-eu"));
        }
    }

    private static async Task RunManyAsync(IPEndPoint vip, Dictionary<string, string[]> expected, int count)
    {
        var addresses = Enumerable.Range(80, 4).Select(i => IPAddress.Parse($"127.0.0.{i}")).ToArray();
        var tcp = addresses.Select(a => new VipClient(new VipClientOptions { Vip = vip, LocalAddress = a })).ToArray();
        var udp = addresses.Select(a => new VipClient(new VipClientOptions { Vip = vip, LocalAddress = a, Transport = VipTransport.Udp })).ToArray();
        try
        {
            var requirements = expected.Keys.ToArray();
            await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
            {
                var requirement = requirements[i % requirements.Length];
                var task = Tasks.Make($"client-{i % 7}", "echo", requirement, $"n{i}");
                string server;
                if (i % 5 == 4)
                {
                    server = (await udp[i % udp.Length].SubmitAsync(task, ct)).ServerId;
                }
                else
                {
                    var run = await tcp[i % tcp.Length].RunAsync(task, ct);
                    Assert.That(Encoding.UTF8.GetString(run.Result.Output.Span), Is.EqualTo($"n{i}"));
                    server = run.Assignment.ServerId;
                }

                Assert.That(expected[requirement], Does.Contain(server), $"'{requirement}' landed on {server}");
            });
        }
        finally
        {
            foreach (var c in tcp.Concat(udp))
            {
                await c.DisposeAsync();
            }
        }
    }

    [Test]
    [Category("Long")]
    public async Task A_stopped_app_server_process_gets_no_task_after_its_heartbeat_timeout()
    {
        using var chain = await StartChainAsync();
        chain.Apps[1].Terminate(); // app-us
        await chain.Apps[1].WaitForExitAsync(TimeSpan.FromSeconds(30));
        await Task.Delay(TimeSpan.FromSeconds(4)); // heartbeat 1 s × 3 missed, and a margin
        await using var client = new VipClient(new VipClientOptions { Vip = chain.Vip, LocalAddress = IPAddress.Parse("127.0.0.90") });
        for (var i = 0; i < 100; i++)
        {
            var assignment = await client.SubmitAsync(Tasks.Make($"c{i}", requirement: "region=us"));
            Assert.That(assignment.ServerId, Is.EqualTo("app-us-big"));
        }
    }
}
