using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Vip.Selection;

namespace Vip.Tests.Selection;

public class SelectionConcurrencyTests
{
    [Test]
    public void Selections_racing_heartbeats_registrations_and_client_changes_stay_consistent()
    {
        var options = new SelectionOptions
        {
            PublishDelay = TimeSpan.FromMilliseconds(2),
            BindingKeys = ["pool"],
            ReservedBindings = false,
            ClientPreferences = new Dictionary<string, int> { ["zone"] = 5 },
            HeartbeatInterval = TimeSpan.FromSeconds(10),
        };
        using var engine = new SelectionEngine(options);
        var everRegistered = new ConcurrentDictionary<string, bool>();
        ServerRegistration Reg(int i, string region) => new($"s{i}", new IPEndPoint(IPAddress.Loopback, 9000 + i), 1_000_000,
            new Dictionary<string, string> { ["region"] = region, ["zone"] = $"z{i % 3}", ["cores"] = $"{4 << (i % 3)}" });
        for (int i = 0; i < 200; i++)
        {
            engine.Register(Reg(i, i % 2 == 0 ? "eu" : "us"));
            everRegistered[$"s{i}"] = true;
        }

        engine.Publish();
        var failures = new ConcurrentQueue<string>();
        var deadline = Stopwatch.StartNew();
        bool Running(int n, int max) => n < max && deadline.Elapsed < TimeSpan.FromSeconds(2);
        int selected = 0;

        void Guard(Action body)
        {
            try
            {
                body();
            }
            catch (Exception ex)
            {
                failures.Enqueue(ex.ToString());
            }
        }

        Action selector = () => Guard(() =>
        {
            byte[] requirement = "region=eu, cores>=8, zone=z1:10"u8.ToArray();
            for (int n = 0; Running(n, 200_000); n++)
            {
                SelectionResult r = engine.Select(new SelectionRequest("c1"u8, [10, 0, 0, 1], "echo"u8, ReadOnlySpan<byte>.Empty, requirement));
                if (!r.IsSelected)
                {
                    continue;
                }

                Interlocked.Increment(ref selected);
                ServerEntry s = r.Server!;
                if (!everRegistered.ContainsKey(s.Id) || !ReferenceEquals(r.Snapshot![r.ServerIndex], s)
                    || s.Attributes["region"] != "eu" || int.Parse(s.Attributes["cores"], System.Globalization.CultureInfo.InvariantCulture) < 8)
                {
                    failures.Enqueue($"bad choice {s.Id}");
                }
            }
        });

        Action heartbeats = () => Guard(() =>
        {
            var random = new Random(1);
            for (int n = 0; Running(n, 1_000_000); n++)
            {
                engine.Heartbeat($"s{random.Next(260)}", new ServerHeartbeat(random.Next(1000), random.Next(100), random.Next(20) == 0));
            }
        });

        Action churn = () => Guard(() =>
        {
            var random = new Random(2);
            for (int n = 0; Running(n, 20_000); n++)
            {
                int i = random.Next(260);
                switch (random.Next(3))
                {
                    case 0:
                        everRegistered[$"s{i}"] = true;
                        engine.Register(Reg(i, random.Next(2) == 0 ? "eu" : "us"));
                        break;
                    case 1:
                        engine.Deregister($"s{i}");
                        break;
                    default:
                        engine.SetClient(new ClientRecord("c1", new Dictionary<string, string> { ["zone"] = $"z{random.Next(3)}" }));
                        engine.SetNetworkRules([new NetworkRule(IPNetwork.Parse("10.0.0.0/8"), new Dictionary<string, string> { ["zone"] = $"z{random.Next(3)}" })]);
                        break;
                }
            }
        });

        Parallel.Invoke(new ParallelOptions { MaxDegreeOfParallelism = 4 }, selector, selector, heartbeats, churn);
        engine.Publish();

        Assert.That(failures, Is.Empty, string.Join(Environment.NewLine, failures.Take(3)));
        Assert.That(selected, Is.GreaterThan(0));
        Assert.That(engine.Servers.All(s => s.IssuedSinceHeartbeat >= 0), Is.True);
        Assert.That(engine.Servers.Select(s => s.Id).Distinct().Count(), Is.EqualTo(engine.Servers.Count));
        foreach (ServerEntry s in engine.Servers)
        {
            Assert.That(engine.Servers.TryGetServer(s.Id, out ServerEntry? same) && ReferenceEquals(same, s), Is.True);
        }
    }
}
