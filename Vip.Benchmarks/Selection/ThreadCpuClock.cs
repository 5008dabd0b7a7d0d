using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;
using Vip.Selection;

namespace Vip.Benchmarks.Selection;

/// <summary>
/// A BenchmarkDotNet clock that reads the measuring thread's CPU time (Linux <c>CLOCK_THREAD_CPUTIME_ID</c>),
/// so time spent waiting for a core on a crowded machine is not counted. Cache pollution by other processes
/// still is: on a busy machine this is an upper bound of the quiet-machine figure, not the figure itself.
/// </summary>
public sealed class ThreadCpuClock : IClock
{
    public string Title => "Thread CPU time";

    public bool IsAvailable => OperatingSystem.IsLinux();

    public Frequency Frequency => new(1_000_000_000);

    /// <summary>The calling thread's CPU time in nanoseconds.</summary>
    public static long Now()
    {
        _ = clock_gettime(3 /* CLOCK_THREAD_CPUTIME_ID */, out TimeSpec t);
        return (t.Seconds * 1_000_000_000) + t.Nanoseconds;
    }

    public long GetTimestamp() => Now();

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

#pragma warning disable SYSLIB1054 // LibraryImport needs unsafe code; one call, no marshalling to speak of.
    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int clock_gettime(int clock, out TimeSpec time);
#pragma warning restore SYSLIB1054
}

/// <summary>Short in-process runs measured in thread CPU time (see <see cref="ThreadCpuClock"/>).</summary>
public sealed class ThreadCpuTimeConfig : ManualConfig
{
    public ThreadCpuTimeConfig()
    {
        AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance).WithClock(new ThreadCpuClock()).WithId("ShortRun-CpuTime"));
        AddDiagnoser(MemoryDiagnoser.Default);
    }
}

/// <summary>The three-term decision of <see cref="SelectionBenchmarks"/>, timed in thread CPU time.</summary>
[Config(typeof(ThreadCpuTimeConfig))]
public class SelectionCpuTimeBenchmarks
{
    private SelectionEngine? _engine;

    [Params(100, 1_000, 10_000)]
    public int Servers { get; set; }

    [GlobalSetup]
    public void Setup() => _engine = Fleet.Build(Servers);

    [GlobalCleanup]
    public void Cleanup() => _engine?.Dispose();

    [Benchmark]
    public int Select() => Fleet.Select(_engine!).ServerIndex;
}

/// <summary><see cref="SelectionUnderHeartbeatsBenchmarks"/> timed in thread CPU time: the heartbeat thread's own CPU is not counted, its cache traffic is.</summary>
[Config(typeof(ThreadCpuTimeConfig))]
public class SelectionUnderHeartbeatsCpuTimeBenchmarks : SelectionUnderHeartbeatsBenchmarks
{
}
