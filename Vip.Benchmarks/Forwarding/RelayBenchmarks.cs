using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using Vip.Forwarding;

namespace Vip.Benchmarks.Forwarding;

/// <summary>
/// The VIP box's relay loop over loopback sockets, next to the same traffic sent directly: a 64-byte round trip
/// (request/response) and a 1 MiB one-way transfer in 64 KiB writes (bulk), many per invocation. The allocation column must read 0 B:
/// that is 0 B per relayed chunk in steady state. Run once as is and once with
/// DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 in the environment to compare the lever (docs/benchmarks.md); the
/// epoll transport does not use .NET's socket engine for relayed bytes, so the lever only moves the Sockets rows.
/// </summary>
[MemoryDiagnoser]
public class RelayBenchmarks
{
    private const int BulkBytes = 1 << 20;
    // Many operations per invocation, so the harness's own cost of awaiting an invocation (a Task) is spread thin.
    private const int RoundTrips = 200;
    private const int Megabytes = 16;
    private readonly byte[] _request = new byte[64];
    private readonly byte[] _response = new byte[64];
    private readonly byte[] _chunk = new byte[64 * 1024];
    private readonly byte[] _ack = new byte[1];
    private readonly List<Socket> _sockets = [];
    private VipForwarder? _echoVip;
    private VipForwarder? _sinkVip;
    private Socket _directEcho = null!;
    private Socket _vipEcho = null!;
    private Socket _directSink = null!;
    private Socket _vipSink = null!;

    /// <summary>The TCP transport under test: the epoll loops (Linux default) or .NET's socket engine.</summary>
    [Params(RelayTransport.Epoll, RelayTransport.Sockets)]
    public RelayTransport Transport { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var echo = Listen(EchoAsync);
        var sink = Listen(SinkAsync);
        _echoVip = Start(echo);
        _sinkVip = Start(sink);
        _directEcho = Connect(echo);
        _vipEcho = Connect(_echoVip.TcpEndPoints[0]);
        _directSink = Connect(sink);
        _vipSink = Connect(_sinkVip.TcpEndPoints[0]);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var s in _sockets)
        {
            s.Dispose();
        }

        _echoVip?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _sinkVip?.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = RoundTrips)]
    public Task Direct_round_trip_64B() => RoundTripsAsync(_directEcho);

    [Benchmark(OperationsPerInvoke = RoundTrips)]
    public Task Vip_round_trip_64B() => RoundTripsAsync(_vipEcho);

    [Benchmark(OperationsPerInvoke = Megabytes)]
    public Task Direct_bulk_1MiB() => BulkAsync(_directSink);

    [Benchmark(OperationsPerInvoke = Megabytes)]
    public Task Vip_bulk_1MiB() => BulkAsync(_vipSink);

    private async Task RoundTripsAsync(Socket s)
    {
        for (var i = 0; i < RoundTrips; i++)
        {
            await RoundTripAsync(s);
        }
    }

    private async Task BulkAsync(Socket s)
    {
        for (var i = 0; i < Megabytes; i++)
        {
            await OneMegabyteAsync(s);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask RoundTripAsync(Socket s)
    {
        await s.SendAsync(_request.AsMemory(), SocketFlags.None);
        var got = 0;
        while (got < _response.Length)
        {
            got += await s.ReceiveAsync(_response.AsMemory(got), SocketFlags.None);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask OneMegabyteAsync(Socket s)
    {
        for (var sent = 0; sent < BulkBytes; sent += _chunk.Length)
        {
            await s.SendAsync(_chunk.AsMemory(), SocketFlags.None);
        }

        // The sink acknowledges each whole megabyte, so one operation is one megabyte delivered.
        await s.ReceiveAsync(_ack.AsMemory(), SocketFlags.None);
    }

    private static async Task EchoAsync(Socket s)
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var n = await s.ReceiveAsync(buffer.AsMemory(), SocketFlags.None);
            if (n == 0)
            {
                return;
            }

            await s.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
        }
    }

    private static async Task SinkAsync(Socket s)
    {
        var buffer = new byte[256 * 1024];
        var ack = new byte[1];
        var pending = 0;
        while (true)
        {
            var n = await s.ReceiveAsync(buffer.AsMemory(), SocketFlags.None);
            if (n == 0)
            {
                return;
            }

            pending += n;
            while (pending >= BulkBytes)
            {
                pending -= BulkBytes;
                await s.SendAsync(ack.AsMemory(), SocketFlags.None);
            }
        }
    }

    private IPEndPoint Listen(Func<Socket, Task> handler)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _sockets.Add(listener);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(16);
        _ = Task.Run(async () =>
        {
            while (true)
            {
                Socket s;
                try
                {
                    s = await listener.AcceptAsync();
                }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                {
                    return;
                }

                s.NoDelay = true;
                lock (_sockets)
                {
                    _sockets.Add(s);
                }

                _ = Task.Run(async () =>
                {
                    try
                    {
                        await handler(s);
                    }
                    catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
                    {
                    }
                });
            }
        });
        return (IPEndPoint)listener.LocalEndPoint!;
    }

    private VipForwarder Start(IPEndPoint backend)
    {
        var options = new ForwarderOptions { Listen = "127.0.0.1:0", Transport = Transport };
        options.HealthCheck.Mode = HealthCheckMode.None;
        options.Backends.Add(new BackendOptions { Address = backend.ToString() });
        var vip = new VipForwarder(options);
        vip.StartAsync().GetAwaiter().GetResult();
        return vip;
    }

    private Socket Connect(IPEndPoint endPoint)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        s.Connect(endPoint);
        _sockets.Add(s);
        return s;
    }
}
