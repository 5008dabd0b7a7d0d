using System.Diagnostics;
using System.Net;
using System.Text;
using BenchmarkDotNet.Attributes;
using Vip.Selection;

namespace Vip.Benchmarks.Selection;

/// <summary>
/// A fleet shaped like the docs/benchmarks.md description: region (4 values), tier (4), cores (4), zone (8),
/// half the servers listing kinds; a client with a record and a network rule; the three-term requirement
/// <c>region=eu, tier in (gold,silver), cores&gt;=8</c> keeps 3 servers in 32. Capacities are 100 million with up to
/// 10 million active, so the tickets a long run counts (nothing heartbeats to clear them) never fill a server: a
/// run measures decisions, not rejections.
/// </summary>
public static class Fleet
{
    public static readonly byte[] Requirement = "region=eu, tier in (gold,silver), cores>=8"u8.ToArray();
    public static readonly byte[] ClientId = "client-42"u8.ToArray();
    public static readonly byte[] Address = [10, 1, 2, 3];
    public static readonly byte[] Kind = "sha256"u8.ToArray();
    public static readonly byte[] Attributes = SelectionRequest.EncodeAttributes([new("job", "1234")]);

    private static readonly string[] Regions = ["eu", "us", "ap", "sa"];
    private static readonly string[] Tiers = ["gold", "silver", "bronze", "iron"];
    public const int Capacity = 100_000_000;

    public static SelectionEngine Build(int servers, SelectionPolicy policy = SelectionPolicy.LeastLoad)
    {
        var engine = new SelectionEngine(new SelectionOptions
        {
            Policy = policy,
            BindingKeys = ["pool"],
            ClientPreferences = new Dictionary<string, int> { ["zone"] = 10 },
            HeartbeatInterval = TimeSpan.FromMinutes(1),
            PublishDelay = TimeSpan.Zero,
            MaxServers = 1 << 20,
            MaxCapacity = Capacity,
        });
        engine.RegisterMany(Enumerable.Range(0, servers).Select(i =>
        {
            var attrs = new Dictionary<string, string>
            {
                ["region"] = Regions[i % 4],
                ["tier"] = Tiers[(i / 4) % 4],
                ["cores"] = (4 << ((i / 16) % 4)).ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["zone"] = $"z{i % 8}",
            };
            if (i % 2 == 0)
            {
                attrs["kinds"] = "sha256,primes,echo";
            }

            return new ServerRegistration($"app-{i:D5}", new IPEndPoint(IPAddress.Loopback, 10_000 + (i % 50_000)), Capacity, attrs);
        }), ServerState.Up);

        var random = new Random(42);
        for (int i = 0; i < servers; i++)
        {
            engine.Heartbeat($"app-{i:D5}", new ServerHeartbeat(random.Next(1000), random.Next(Capacity / 10), false));
        }

        engine.SetClient(new ClientRecord("client-42", new Dictionary<string, string> { ["zone"] = "z1" }));
        engine.SetNetworkRules([new NetworkRule(IPNetwork.Parse("10.0.0.0/8"), new Dictionary<string, string> { ["dc"] = "west" })]);
        return engine;
    }

    public static SelectionResult Select(SelectionEngine engine) =>
        engine.Select(new SelectionRequest(ClientId, Address, Kind, Attributes, Requirement));
}

/// <summary>One decision with the three-term requirement over 100 / 1 000 / 10 000 servers (least load).</summary>
[MemoryDiagnoser]
public class SelectionBenchmarks
{
    private SelectionEngine _engine = null!;

    [Params(100, 1_000, 10_000)]
    public int Servers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _engine = Fleet.Build(Servers);
        if (!Fleet.Select(_engine).IsSelected)
        {
            throw new InvalidOperationException("the benchmark fleet must have candidates");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _engine.Dispose();

    [Benchmark]
    public int Select() => Fleet.Select(_engine).ServerIndex;
}

/// <summary>Each ranking policy, 1 000 and 10 000 servers, the same requirement (all but least load walk every candidate).</summary>
[MemoryDiagnoser]
public class SelectionPolicyBenchmarks
{
    private SelectionEngine _engine = null!;

    [Params(SelectionPolicy.LeastLoad, SelectionPolicy.PowerOfTwoChoices, SelectionPolicy.WeightedRoundRobin, SelectionPolicy.ClientAffinity)]
    public SelectionPolicy Policy { get; set; }

    [Params(1_000, 10_000)]
    public int Servers { get; set; }

    [GlobalSetup]
    public void Setup() => _engine = Fleet.Build(Servers, Policy);

    [GlobalCleanup]
    public void Cleanup() => _engine.Dispose();

    [Benchmark]
    public int Select() => Fleet.Select(_engine).ServerIndex;
}

/// <summary>
/// 10 000 servers; with <see cref="Heartbeats"/> a background thread heartbeats every server once a second
/// (10 000 heartbeats/s) while decisions run, to show heartbeats do not move selection latency.
/// </summary>
[MemoryDiagnoser]
public class SelectionUnderHeartbeatsBenchmarks
{
    private const int ServerCount = 10_000;
    private SelectionEngine _engine = null!;
    private Thread? _beater;
    private volatile bool _stop;

    [Params(false, true)]
    public bool Heartbeats { get; set; }

    /// <summary>Heartbeats the background thread sent (printed at cleanup, to check the rate).</summary>
    public long Sent { get; private set; }

    [GlobalSetup]
    public void Setup()
    {
        _engine = Fleet.Build(ServerCount);
        if (!Heartbeats)
        {
            return;
        }

        byte[][] ids = [.. Enumerable.Range(0, ServerCount).Select(i => Encoding.UTF8.GetBytes($"app-{i:D5}"))];
        _beater = new Thread(() =>
        {
            var clock = Stopwatch.StartNew();
            var random = new Random(7);
            long sent = 0;
            while (!_stop)
            {
                // 10 000 per second: catch up to the schedule, then sleep a millisecond.
                long due = (long)(clock.Elapsed.TotalSeconds * ServerCount);
                for (; sent < due; sent++)
                {
                    _engine.Heartbeat(ids[sent % ServerCount], new ServerHeartbeat(random.Next(1000), random.Next(Fleet.Capacity / 10), false));
                }

                Thread.Sleep(1);
            }

            Sent = sent;
        }) { IsBackground = true, Name = "heartbeats" };
        _beater.Start();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stop = true;
        _beater?.Join();
        if (_beater is not null)
        {
            Console.WriteLine($"// heartbeats sent: {Sent}");
        }

        _engine.Dispose();
    }

    [Benchmark]
    public int Select() => Fleet.Select(_engine).ServerIndex;
}

/// <summary>The costs around a decision: a heartbeat, and a requirement parse on a cache miss.</summary>
[MemoryDiagnoser]
public class SelectionSupportBenchmarks
{
    private SelectionEngine _engine = null!;
    private readonly byte[] _id = "app-00500"u8.ToArray();

    [GlobalSetup]
    public void Setup() => _engine = Fleet.Build(1_000);

    [GlobalCleanup]
    public void Cleanup() => _engine.Dispose();

    [Benchmark]
    public bool Heartbeat() => _engine.Heartbeat(_id, new ServerHeartbeat(100, 7, false));

    [Benchmark]
    public int ParseUncached() => RequirementParser.Parse("region=eu, tier in (gold,silver), cores>=8").Terms.Length;
}
