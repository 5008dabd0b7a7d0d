using System.IO.Pipelines;
using BenchmarkDotNet.Attributes;
using Vip.Forwarding;

namespace Vip.Benchmarks.Forwarding;

/// <summary>
/// The in-memory half of the relay loop: one chunk written into a direction's pipe (GetMemory, Advance, FlushAsync)
/// and read back out (ReadAsync, AdvanceTo), with the relay's own pipe options (inline schedulers, pause threshold).
/// It is the per-chunk cost the forwarder adds on top of the two socket calls; it must allocate nothing.
/// </summary>
[MemoryDiagnoser]
public class PipeStageBenchmarks
{
    private Pipe _pipe = null!;

    [Params(64, 16 * 1024, 256 * 1024)]
    public int ChunkSize { get; set; }

    [GlobalSetup]
    public void Setup() => _pipe = new Pipe(new RelaySettings(new ForwarderOptions()).PipeOptions);

    [Benchmark]
    public long Write_then_read_one_chunk()
    {
        var writer = _pipe.Writer;
        var memory = writer.GetMemory(ChunkSize);
        memory.Span[0] = 1;
        writer.Advance(ChunkSize);
        var flush = writer.FlushAsync();
        _ = flush.IsCompleted ? flush.Result : flush.AsTask().GetAwaiter().GetResult();

        var read = _pipe.Reader.ReadAsync();
        var result = read.IsCompleted ? read.Result : read.AsTask().GetAwaiter().GetResult();
        var length = result.Buffer.Length;
        _pipe.Reader.AdvanceTo(result.Buffer.End);
        return length;
    }
}
