using System.Net;
using System.Net.Sockets;

namespace Vip.Benchmarks.Compare;

/// <summary>
/// The UDP backend: echoes every datagram to its sender, on one dedicated thread, allocation-free. It also
/// accepts TCP on the same port number so a forwarder that health-checks its backends over TCP sees it up.
/// </summary>
internal sealed class UdpEcho : IDisposable
{
    private readonly Socket _udp;
    private readonly Socket _tcp;
    private readonly Thread _thread;
    private readonly Task _acceptLoop;

    public UdpEcho(IPEndPoint endPoint)
    {
        _udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        _udp.Bind(endPoint);
        _udp.ReceiveBufferSize = 4 << 20;
        _udp.SendBufferSize = 4 << 20;
        _tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _tcp.Bind(endPoint);
        _tcp.Listen(512);
        EndPoint = endPoint;
        _thread = new Thread(Echo) { IsBackground = true, Name = "udp-echo" };
        _thread.Start();
        _acceptLoop = AcceptAndCloseAsync();
    }

    public IPEndPoint EndPoint { get; }

    public void Dispose()
    {
        _udp.Dispose();
        _tcp.Dispose();
        _thread.Join(TimeSpan.FromSeconds(5));
        _acceptLoop.Wait(TimeSpan.FromSeconds(5)); // ends by itself once the listener is disposed
    }

    private void Echo()
    {
        var buffer = new byte[2048];
        var from = new SocketAddress(AddressFamily.InterNetwork);
        while (true)
        {
            try
            {
                var n = _udp.ReceiveFrom(buffer, SocketFlags.None, from);
                _udp.SendTo(buffer.AsSpan(0, n), SocketFlags.None, from);
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.MessageSize)
            {
                // An ICMP error from an earlier send (a client gone): keep echoing.
            }
            catch (Exception ex) when (ex is ObjectDisposedException or SocketException)
            {
                return; // disposed
            }
        }
    }

    private async Task AcceptAndCloseAsync()
    {
        while (true)
        {
            Socket accepted;
            try
            {
                accepted = await _tcp.AcceptAsync();
            }
            catch (Exception ex) when (ex is ObjectDisposedException or SocketException)
            {
                return;
            }

            accepted.Dispose();
        }
    }
}

/// <summary>
/// Runs <see cref="UdpEcho"/> as its own process (<c>Vip.Benchmarks compare --serve-udp-echo 127.0.0.1:PORT</c>), so the
/// backend does not share a process, and so a CPU share, with the load generator — as redis and iperf3 do not.
/// </summary>
internal static class UdpEchoServer
{
    public const string Switch = "--serve-udp-echo";

    /// <summary>An orphaned echo (its harness killed) still ends by itself.</summary>
    private static readonly TimeSpan MaxLifetime = TimeSpan.FromHours(1);

    public static async Task<int> RunAsync(string endPoint)
    {
        if (!IPEndPoint.TryParse(endPoint, out var parsed) || !IPAddress.IsLoopback(parsed.Address))
        {
            await Console.Error.WriteLineAsync($"{Switch} takes a loopback HOST:PORT, not '{endPoint}'");
            return 64;
        }

        using var stop = new CancellationTokenSource(MaxLifetime);
        using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(
            System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx =>
            {
                ctx.Cancel = true;
                stop.Cancel();
            });
        using var echo = new UdpEcho(parsed);
        Console.WriteLine($"udp echo on {parsed}");
        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token);
        }
        catch (OperationCanceledException)
        {
            // SIGTERM or lifetime over.
        }

        return 0;
    }

    /// <summary>Starts this benchmark executable again as a UDP echo process on a fresh port.</summary>
    public static async Task<(IPEndPoint EndPoint, ChildProcess Process)> StartAsync(PeerScope scope, CancellationToken cancellationToken)
    {
        var endPoint = Loopback.FreeTcpAndUdpEndPoint();
        var self = Environment.ProcessPath ?? throw new PeerFailedException("cannot find this executable to start the UDP echo");
        List<string> args = [];
        if (string.Equals(Path.GetFileNameWithoutExtension(self), "dotnet", StringComparison.Ordinal))
        {
            args.Add(typeof(UdpEchoServer).Assembly.Location); // started as `dotnet Vip.Benchmarks.dll`
        }

        args.AddRange(["compare", Switch, endPoint.Text()]);
        var process = scope.Track(ChildProcess.Start("udp echo", self, args));
        await Loopback.WaitForUdpEchoAsync(endPoint, process, TimeSpan.FromSeconds(30), cancellationToken);
        return (endPoint, process);
    }
}

/// <summary>What a UDP load run measured.</summary>
internal sealed record UdpLoadResult(double DatagramsPerSecond, long Timeouts);

/// <summary>
/// UDP load: a few client sessions (one socket and one thread each), each keeping a window of datagrams in
/// flight to an echo, sending one for every one that returns. A window that stalls (loss) is refilled after a
/// short timeout, and counted.
/// </summary>
internal static class UdpLoad
{
    public const int Sessions = 4;
    public const int Window = 16;
    public const int PayloadBytes = 64;
    private static readonly TimeSpan Warmup = TimeSpan.FromMilliseconds(500);
    private const int StallTimeoutMs = 100;

    public static Task<UdpLoadResult> RunAsync(IPEndPoint target, TimeSpan duration, CancellationToken cancellationToken)
    {
        return Task.Run(() =>
        {
            var start = DateTime.UtcNow;
            var measureFrom = start + Warmup;
            var until = measureFrom + duration;
            var received = new long[Sessions];
            var timeouts = new long[Sessions];
            var threads = new Thread[Sessions];
            for (var s = 0; s < Sessions; s++)
            {
                var session = s;
                threads[s] = new Thread(() => RunSession(target, measureFrom, until, cancellationToken, out received[session], out timeouts[session]))
                {
                    IsBackground = true,
                    Name = $"udp-load-{session}",
                };
                threads[s].Start();
            }

            foreach (var t in threads)
            {
                t.Join();
            }

            cancellationToken.ThrowIfCancellationRequested();
            return new UdpLoadResult(received.Sum() / duration.TotalSeconds, timeouts.Sum());
        }, cancellationToken);
    }

    private static void RunSession(IPEndPoint target, DateTime measureFrom, DateTime until, CancellationToken cancellationToken, out long received, out long timeouts)
    {
        received = 0;
        timeouts = 0;
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.ReceiveTimeout = StallTimeoutMs;
        socket.ReceiveBufferSize = 1 << 20;
        socket.Connect(target);
        var payload = new byte[PayloadBytes];
        var buffer = new byte[2048];
        for (var i = 0; i < Window; i++)
        {
            socket.Send(payload);
        }

        var checkClock = 0;
        var measuring = false;
        while (!cancellationToken.IsCancellationRequested)
        {
            // Reading the clock every datagram would cost more than the datagram: look every 64.
            if ((++checkClock & 63) == 0 || !measuring)
            {
                var now = DateTime.UtcNow;
                if (now >= until)
                {
                    return;
                }

                measuring = now >= measureFrom;
            }

            try
            {
                socket.Receive(buffer);
                if (measuring)
                {
                    received++;
                }

                socket.Send(payload);
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock or SocketError.ConnectionRefused or SocketError.ConnectionReset)
            {
                timeouts++;
                for (var i = 0; i < Window; i++)
                {
                    socket.Send(payload);
                }
            }
        }
    }
}
