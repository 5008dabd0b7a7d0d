using System.Net;
using System.Net.Sockets;

namespace Vip.Tests.Reliability.Harness;

/// <summary>
/// Hands out loopback addresses that stand for separate hosts (127.X.Y.1, 127.X.Y.2, ...) from a /24 block chosen at
/// random per instance, so daemons can use fixed, readable ports without colliding with other tests on the machine.
/// Linux routes all of 127.0.0.0/8 to the loopback interface, so these addresses need no set-up.
/// </summary>
internal sealed class LoopbackHosts
{
    private readonly byte _x;
    private readonly byte _y;
    private int _next;

    public LoopbackHosts()
    {
        _x = (byte)Random.Shared.Next(100, 250);
        _y = (byte)Random.Shared.Next(1, 250);
    }

    /// <summary>The next host address of the block.</summary>
    public IPAddress Next()
    {
        var n = Interlocked.Increment(ref _next);
        if (n > 250)
        {
            throw new InvalidOperationException("out of loopback host addresses");
        }

        return new IPAddress([127, _x, _y, (byte)n]);
    }

    /// <summary>A free TCP port on <paramref name="address"/> (bound and released: the caller uses it at once).</summary>
    public static int FreeTcpPort(IPAddress address)
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(address, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    /// <summary>A free UDP port on <paramref name="address"/>.</summary>
    public static int FreeUdpPort(IPAddress address)
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.Bind(new IPEndPoint(address, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }
}
