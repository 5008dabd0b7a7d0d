using System.Buffers;
using System.Net;
using BenchmarkDotNet.Attributes;
using Vip.Protocol;

namespace Vip.Benchmarks.Protocol;

/// <summary>Parse and write a typical TASK and REDIRECT frame. Target: 0 B and under 100 ns per frame.</summary>
[MemoryDiagnoser]
public class FrameBenchmarks
{
    private readonly FrameReader _reader = new();
    private readonly ArrayBufferWriter<byte> _output = new(4096);
    private TaskRequest _task = null!;
    private ReadOnlySequence<byte> _taskBytes;
    private ReadOnlySequence<byte> _redirectBytes;
    private Redirect _redirect = null!;
    private byte[] _ticket = null!;
    private WireEndpoint _server;

    [GlobalSetup]
    public void Setup()
    {
        _task = new TaskRequest("client-0042", "sha256",
            [new("region", "eu"), new("tier", "batch"), new("prio", "3")], "region=eu, cores>=4, gpu:20", new byte[64]);
        _taskBytes = new ReadOnlySequence<byte>(Encode(_task));
        _ticket = new byte[72];
        _server = WireEndpoint.From(IPAddress.Parse("10.0.3.17"), 7001);
        _redirect = new Redirect("app-17", _server, 1_800_000_000_000, _ticket, []);
        _redirectBytes = new ReadOnlySequence<byte>(Encode(_redirect));
    }

    private static byte[] Encode<T>(T message) where T : IFrameMessage<T>
    {
        var w = new ArrayBufferWriter<byte>();
        FrameWriter.Write(w, 1, message);
        return w.WrittenSpan.ToArray();
    }

    [Benchmark]
    public int ParseTask()
    {
        var consumed = _taskBytes.Start;
        var examined = _taskBytes.End;
        _reader.TryParse(_taskBytes, ref consumed, ref examined, out var frame);
        var view = TaskView.Read(frame.Payload.FirstSpan);
        return view.Attributes.Count + view.Body.Length;
    }

    [Benchmark]
    public int WriteTask()
    {
        _output.ResetWrittenCount();
        FrameWriter.Write(_output, 7, _task);
        return _output.WrittenCount;
    }

    [Benchmark]
    public int ParseRedirect()
    {
        var consumed = _redirectBytes.Start;
        var examined = _redirectBytes.End;
        _reader.TryParse(_redirectBytes, ref consumed, ref examined, out var frame);
        var r = new PayloadReader(frame.Payload.FirstSpan);
        var id = r.ReadStr8();
        var ep = r.ReadEndpoint();
        r.ReadI64();
        var ticket = r.ReadBytes16();
        r.ReadU8();
        r.EnsureEnd();
        return id.Length + ep.Port + ticket.Length;
    }

    [Benchmark]
    public int WriteRedirect()
    {
        _output.ResetWrittenCount();
        FrameWriter.WriteRedirect(_output, 7, "app-17"u8, _server, 1_800_000_000_000, _ticket);
        return _output.WrittenCount;
    }

    [Benchmark]
    public int WriteRedirectRecord()
    {
        _output.ResetWrittenCount();
        FrameWriter.Write(_output, 7, _redirect);
        return _output.WrittenCount;
    }
}
