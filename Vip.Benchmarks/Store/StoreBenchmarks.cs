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
        RestartData.Create(OpenPath, Servers);

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

    /// <summary>
    /// The tier-2 restart as <c>Tier2Server.StartAsync</c> does it: open the store, load servers, clients and rules
    /// into a selection engine, then one server heartbeats and a decision selects it; then close.
    /// </summary>
    [Benchmark]
    public int OpenLoadSelectAndClose() => RestartData.OpenLoadAndSelect(OpenPath);

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
