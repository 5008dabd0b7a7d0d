using System.Net;
using System.Net.Sockets;

namespace Vip.Benchmarks.Compare;

/// <summary>Loopback addresses and readiness probes. Everything the harness opens is on 127.0.0.1.</summary>
internal static class Loopback
{
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>A TCP port that was free a moment ago (bound to port 0 and read back, then released).</summary>
    public static IPEndPoint FreeTcpEndPoint()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return (IPEndPoint)probe.LocalEndPoint!;
    }

    /// <summary>A port free for both TCP and UDP, so a UDP listener can sit on the same number as a TCP one.</summary>
    public static IPEndPoint FreeTcpAndUdpEndPoint()
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var endPoint = (IPEndPoint)udp.LocalEndPoint!;
            using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                tcp.Bind(endPoint);
                return endPoint;
            }
            catch (SocketException)
            {
                // Taken for TCP: try another number.
            }
        }

        throw new InvalidOperationException("no loopback port free for both TCP and UDP after 50 attempts");
    }

    public static string Text(this IPEndPoint endPoint) => $"{endPoint.Address}:{endPoint.Port}";

    /// <summary>Waits until <paramref name="endPoint"/> accepts TCP connections, or the process dies, or the deadline passes.</summary>
    public static async Task WaitForTcpAsync(IPEndPoint endPoint, ChildProcess owner, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            owner.ThrowIfExited();
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                attempt.CancelAfter(TimeSpan.FromSeconds(1));
                await socket.ConnectAsync(endPoint, attempt.Token);
                return;
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                if (DateTime.UtcNow > deadline)
                {
                    throw new PeerFailedException($"{owner.Name} did not listen on {endPoint.Text()} within {timeout.TotalSeconds:0} s: {owner.Tail()}");
                }
            }

            await Task.Delay(ProbeInterval, cancellationToken);
        }
    }

    /// <summary>Waits until a datagram sent to <paramref name="endPoint"/> comes back (the path to an echo backend works).</summary>
    public static async Task WaitForUdpEchoAsync(IPEndPoint endPoint, ChildProcess? owner, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Connect(endPoint);
        var probe = "probe"u8.ToArray();
        var buffer = new byte[64];
        while (true)
        {
            owner?.ThrowIfExited();
            await socket.SendAsync(probe, SocketFlags.None, cancellationToken);
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            attempt.CancelAfter(TimeSpan.FromMilliseconds(200));
            try
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, attempt.Token);
                if (n == probe.Length)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                // Not there yet (or ICMP port unreachable while the proxy starts).
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new PeerFailedException($"{owner?.Name ?? "echo"} did not echo UDP on {endPoint.Text()} within {timeout.TotalSeconds:0} s: {owner?.Tail()}");
            }
        }
    }
}
