using System.Buffers;
using System.Net;
using BenchmarkDotNet.Attributes;
using Vip.Protocol;

namespace Vip.Benchmarks.Forwarding;

/// <summary>PROXY protocol v2: parse (whole and split across segments) and write; every row must read 0 B allocated.</summary>
[MemoryDiagnoser]
public class ProxyProtocolBenchmarks
{
    private readonly ProxyProtocolReader _reader = ProxyProtocolReader.Default;
    private readonly byte[] _output = new byte[ProxyProtocol.MaxWrittenLength];
    private ProxyHeader _v4;
    private ProxyHeader _v6;
    private ReadOnlySequence<byte> _v4Whole;
    private ReadOnlySequence<byte> _v6Whole;
    private ReadOnlySequence<byte> _v6Split;

    [GlobalSetup]
    public void Setup()
    {
        _v4 = ProxyHeader.Create(ProxyTransport.Stream, IPEndPoint.Parse("192.0.2.10:40000"), IPEndPoint.Parse("198.51.100.1:443"));
        _v6 = ProxyHeader.Create(ProxyTransport.Stream, IPEndPoint.Parse("[2001:db8::10]:40000"), IPEndPoint.Parse("[2001:db8::1]:443"));
        var v4 = new byte[_v4.EncodedLength + 64];
        ProxyProtocolWriter.Write(v4, _v4);
        var v6 = new byte[_v6.EncodedLength + 64];
        ProxyProtocolWriter.Write(v6, _v6);
        _v4Whole = new ReadOnlySequence<byte>(v4);
        _v6Whole = new ReadOnlySequence<byte>(v6);
        var first = new Segment(v6.AsMemory(0, 20), 0);
        var last = first.Append(v6.AsMemory(20));
        _v6Split = new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    [Benchmark]
    public bool Parse_IPv4() => Parse(_v4Whole);

    [Benchmark]
    public bool Parse_IPv6() => Parse(_v6Whole);

    [Benchmark]
    public bool Parse_IPv6_split_in_the_address_block() => Parse(_v6Split);

    [Benchmark]
    public int Write_IPv4() => ProxyProtocolWriter.Write(_output, _v4);

    [Benchmark]
    public int Write_IPv6() => ProxyProtocolWriter.Write(_output, _v6);

    private bool Parse(in ReadOnlySequence<byte> input)
    {
        var consumed = input.Start;
        var examined = input.Start;
        return _reader.TryParse(input, ref consumed, ref examined, out _);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
