using System.Net;

namespace Vip.Forwarding;

/// <summary>The state of one backend as the VIP box sees it.</summary>
/// <param name="Address">The configured <c>HOST:PORT</c>.</param>
/// <param name="EndPoint">The resolved endpoint.</param>
/// <param name="Weight">Relative share in the round robin.</param>
/// <param name="IsUp">Whether new connections go to it.</param>
/// <param name="ActiveConnections">Connections relayed to it now.</param>
/// <param name="ProxyProtocol">Whether it receives a PROXY v2 header.</param>
public readonly record struct BackendStatus(string Address, IPEndPoint EndPoint, int Weight, bool IsUp, long ActiveConnections, bool ProxyProtocol);

/// <summary>
/// One backend: its address and settings (replaced on reload), its health (kept across reloads), and a count of
/// the connections relayed to it.
/// </summary>
internal sealed class Backend
{
    private readonly object _gate = new();
    private volatile bool _up = true;
    private int _failures;
    private int _successes;
    private long _active;

    public Backend(string address, IPEndPoint endPoint, int weight, bool proxyProtocol)
    {
        Address = address;
        EndPoint = endPoint;
        Weight = weight;
        ProxyProtocol = proxyProtocol;
    }

    public string Address { get; }

    public IPEndPoint EndPoint { get; }

    /// <summary>The endpoint as a native sockaddr (for the epoll transport's connect), built once.</summary>
    internal System.Net.SocketAddress SocketAddress => _socketAddress ??= EndPoint.Serialize();

    private System.Net.SocketAddress? _socketAddress;

    public int Weight { get; set; }

    public bool ProxyProtocol { get; set; }

    /// <summary>Set when a reload removed it: checks stop, live connections carry on.</summary>
    public bool Removed { get; set; }

    public bool IsUp => _up;

    public long ActiveConnections => Interlocked.Read(ref _active);

    public void ConnectionStarted() => Interlocked.Increment(ref _active);

    public void ConnectionEnded() => Interlocked.Decrement(ref _active);

    /// <summary>Counts a success; returns true when this brings the backend up (after <paramref name="rise"/> in a row).</summary>
    public bool ReportSuccess(int rise)
    {
        lock (_gate)
        {
            _failures = 0;
            if (_up)
            {
                return false;
            }

            if (++_successes < rise)
            {
                return false;
            }

            _successes = 0;
            _up = true;
            return true;
        }
    }

    /// <summary>Counts a failure; returns true when this takes the backend down (after <paramref name="fall"/> in a row).</summary>
    public bool ReportFailure(int fall)
    {
        lock (_gate)
        {
            _successes = 0;
            if (!_up)
            {
                return false;
            }

            if (++_failures < fall)
            {
                return false;
            }

            _failures = 0;
            _up = false;
            return true;
        }
    }

    /// <summary>Marks the backend up without counting (health checks turned off).</summary>
    public bool ForceUp()
    {
        lock (_gate)
        {
            _failures = 0;
            _successes = 0;
            var changed = !_up;
            _up = true;
            return changed;
        }
    }

    public BackendStatus ToStatus() => new(Address, EndPoint, Weight, _up, ActiveConnections, ProxyProtocol);

    public override string ToString() => Address;
}
