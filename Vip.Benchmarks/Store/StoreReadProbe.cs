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
        using var database = StoreDocuments.OpenDatabase(path);
        for (int round = 0; round < 2; round++)
        {
            string when = round == 0 ? "cold" : "warm";
            Step($"{when}: enumerate documents only", () => Enumerate(database));
            Step($"{when}: StoreDocuments.Load", () => StoreDocuments.Load(database, out _).Servers.Count);
        }

        return 0;
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
