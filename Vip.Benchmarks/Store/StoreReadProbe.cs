using System.Diagnostics;
using System.Globalization;
using LiteDB;
using Vip.Store;

namespace Vip.Benchmarks.Store;

/// <summary>
/// <c>Vip.Benchmarks store-restart --probe PATH</c>: in one fresh process, times the parts of a store read one by one
/// (LiteDB open; enumerating the documents without mapping them; the full load into a snapshot), cold then warm,
/// with the thread's allocation and the process's GC and JIT counts for each step. For finding where a restart goes.
/// </summary>
internal static class StoreReadProbe
{
    public static int Run(string path)
    {
        Step("LiteDB open + checkpoint", () =>
        {
            using var db = StoreDocuments.OpenDatabase(path);
            db.Checkpoint();
            return 0;
        });
        using (var database = StoreDocuments.OpenDatabase(path))
        {
            for (int round = 0; round < 2; round++)
            {
                string when = round == 0 ? "cold" : "warm";
                Step($"{when}: enumerate documents only", () => Enumerate(database));
                Step($"{when}: decode records only", () => Decode(database));
                Step($"{when}: 20 000 keys into ImmutableDictionary builders", () => Immutable(20_000));
                Step($"{when}: StoreDocuments.Load", () => StoreDocuments.Load(database, out _).Servers.Count);
            }
        }

        Step("warm: LiteDB open + checkpoint", () =>
        {
            using var db = StoreDocuments.OpenDatabase(path);
            db.Checkpoint();
            return 0;
        });
        Step("warm: LiteDB open + checkpoint + schema", () =>
        {
            using var db = StoreDocuments.OpenDatabase(path);
            db.Checkpoint();
            return StoreDocuments.EnsureSchema(db) ? 1 : 0;
        });
        VipStore? store = null;
        Step("warm: VipStore.Open", () => (store = VipStore.Open(new StoreOptions { Path = path })).Snapshot.Servers.Count);
        Step("warm: VipStore.Dispose", () =>
        {
            store!.Dispose();
            return 0;
        });
        return 0;
    }

    // The records decoded into a list: no snapshot dictionaries, no page book.
    private static int Decode(LiteDatabase db)
    {
        var kept = new List<object>();
        var pool = new StoreDocuments.StringPool();
        foreach (var (name, kind) in new[] { ("server_pages", 0), ("client_pages", 1), ("network_pages", 2) })
        {
            foreach (var doc in db.GetCollection(name).FindAll())
            {
                var reader = new StoreDocuments.RecordReader(doc["recs"].AsBinary, name, doc["_id"].AsInt32, pool);
                while (!reader.AtEnd)
                {
                    kept.Add(kind switch { 0 => reader.Server(), 1 => reader.Client(), _ => reader.Network(out _) });
                }
            }
        }

        return kept.Count;
    }

    private static int Immutable(int n)
    {
        var b = System.Collections.Immutable.ImmutableDictionary.CreateBuilder<string, object>(StringComparer.Ordinal);
        for (int i = 0; i < n; i++)
        {
            b.Add("client-" + i.ToString(CultureInfo.InvariantCulture), b);
        }

        return b.ToImmutable().Count;
    }

    private static int Enumerate(LiteDatabase db)
    {
        int n = 0;
        foreach (string name in new[] { "server_pages", "client_pages", "network_pages" })
        {
            foreach (var doc in db.GetCollection(name).FindAll())
            {
                n += doc.Count;
            }
        }

        return n;
    }

    private static void Step(string name, Func<int> step)
    {
        long alloc = GC.GetAllocatedBytesForCurrentThread();
        int gcs = GC.CollectionCount(0);
        var pause = GC.GetTotalPauseDuration();
        long jit = System.Runtime.JitInfo.GetCompiledMethodCount();
        var jitTime = System.Runtime.JitInfo.GetCompilationTime();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        long start = Stopwatch.GetTimestamp();
        int result = step();
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"{name,-36} {ms,7:F1} ms wall {(Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMilliseconds,7:F0} ms CPU {(GC.GetAllocatedBytesForCurrentThread() - alloc) / 1e6,7:F1} MB  GC {GC.CollectionCount(0) - gcs} / {(GC.GetTotalPauseDuration() - pause).TotalMilliseconds:F0} ms  JIT {System.Runtime.JitInfo.GetCompiledMethodCount() - jit} / {(System.Runtime.JitInfo.GetCompilationTime() - jitTime).TotalMilliseconds:F0} ms  ({result})"));
    }
}
