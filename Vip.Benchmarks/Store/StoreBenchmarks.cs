using System.Net;
using BenchmarkDotNet.Attributes;
using Vip.Store;

namespace Vip.Benchmarks.Store;

/// <summary>
/// Restart time of a tier-2 store (issue 4: 10 000 servers ready in under 1 s), the in-memory heartbeat, and
/// durable write throughput (every acknowledged write is committed, checkpointed and fsynced).
/// </summary>
[MemoryDiagnoser]
public class StoreBenchmarks
{
    private string _dir = null!;
    private VipStore _store = null!;
    private int _n;

    [Params(10_000)]
    public int Servers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _dir = Path.Combine(Path.GetTempPath(), "vip-bench-store-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        using (var store = VipStore.Open(new StoreOptions { Path = OpenPath, MaxBatchSize = 1000 }))
        {
            var writes = new List<Task>();
            for (var i = 0; i < Servers; i++)
            {
                var attrs = new Dictionary<string, string>
                {
                    ["region"] = (i % 3) switch { 0 => "eu", 1 => "us", _ => "ap" },
                    ["pool"] = i % 10 == 0 ? "gold" : "std",
                    ["cores"] = (8 << (i % 4)).ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["rack"] = "r" + (i % 64),
                };
                writes.Add(store.RegisterServerAsync(new AppServerRegistration("app-" + i, new IPEndPoint(IPAddress.Parse("10.0.0.1"), 20000 + (i % 40000)), attrs, 16)));
                writes.Add(store.SetClientAsync("client-" + i, new Dictionary<string, string> { ["pool"] = i % 10 == 0 ? "gold" : "std" }));
            }

            for (var i = 0; i < 1000; i++)
            {
                writes.Add(store.SetNetworkRuleAsync(new IPNetwork(new IPAddress([10, (byte)(i / 256), (byte)(i % 256), 0]), 24), new Dictionary<string, string> { ["site"] = "s" + (i % 7) }));
            }

            Task.WhenAll(writes).GetAwaiter().GetResult();
        }

        _store = VipStore.Open(new StoreOptions { Path = Path.Combine(_dir, "write.db") });
        _store.RegisterServerAsync(new AppServerRegistration("hb", new IPEndPoint(IPAddress.Loopback, 1), new Dictionary<string, string>(), 1)).GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private string OpenPath => Path.Combine(_dir, "restart.db");

    /// <summary>Open a store of 10 000 servers, 10 000 clients and 1 000 network rules, ready to serve; then close it.</summary>
    [Benchmark]
    public int OpenReadyAndClose()
    {
        using var store = VipStore.Open(new StoreOptions { Path = OpenPath });
        return store.Snapshot.Servers.Count;
    }

    /// <summary>A heartbeat with an unchanged state: memory only.</summary>
    [Benchmark(OperationsPerInvoke = 1000)]
    public bool Heartbeat()
    {
        var ok = false;
        for (var i = 0; i < 1000; i++)
        {
            ok = _store.Heartbeat("hb", ServerState.Up, i, i);
        }

        return ok;
    }

    /// <summary>One admin write, awaited until durable (latency: one commit + checkpoint + fsync).</summary>
    [Benchmark]
    public async Task DurableWriteSequential() => await _store.SetClientAsync("seq", new Dictionary<string, string> { ["n"] = (++_n).ToString(System.Globalization.CultureInfo.InvariantCulture) });

    /// <summary>1 000 writes to distinct keys issued at once, all awaited (throughput with batching), per write.</summary>
    [Benchmark(OperationsPerInvoke = 1000)]
    public async Task DurableWritesConcurrent()
    {
        var round = ++_n;
        var writes = new Task[1000];
        for (var i = 0; i < writes.Length; i++)
        {
            writes[i] = _store.SetClientAsync("c" + i, new Dictionary<string, string> { ["n"] = round.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        }

        await Task.WhenAll(writes);
    }
}
