using System.Net;
using System.Text;
using Vip.Protocol;

namespace Vip.Dispatch.Tier1;

/// <summary>How a tier-1 daemon picks the tier-2 daemon for a task.</summary>
public enum Tier2Choice
{
    /// <summary>Rendezvous (highest random weight) hash of the client id: the same client lands on the same tier-2 while it is up.</summary>
    Hash = 0,
    /// <summary>Each task goes to the next tier-2 in turn.</summary>
    RoundRobin = 1,
}

/// <summary>Configuration of a <see cref="Tier1Server"/> (configuration section <c>Tier1</c> in <c>vipd tier1</c>).</summary>
public sealed class Tier1Options
{
    /// <summary>This daemon's id, sent to tier-2 in every FORWARD. Default <c>tier1</c>; at most 255 UTF-8 bytes.</summary>
    public string Id { get; set; } = "tier1";

    /// <summary>TCP address to accept TASK frames on. Required; port 0 picks a free port.</summary>
    public IPEndPoint? Listen { get; set; }

    /// <summary>UDP address to accept single-datagram TASK frames on; null (default) for none.</summary>
    public IPEndPoint? UdpListen { get; set; }

    /// <summary>The tier-2 daemons (their task ports). At least one, at most 64.</summary>
    public IList<EndPoint> Tier2 { get; } = new List<EndPoint>();

    /// <summary>
    /// Source networks (the VIP boxes) whose connections and datagrams start with a PROXY protocol v2 header.
    /// From these a header is required; from anyone else none is read. Default: empty (no PROXY header).
    /// </summary>
    public IList<IPNetwork> TrustedProxies { get; } = new List<IPNetwork>();

    /// <summary>How the tier-2 daemon is chosen. Default <see cref="Tier2Choice.Hash"/>.</summary>
    public Tier2Choice Tier2Choice { get; set; } = Tier2Choice.Hash;

    /// <summary>Caps on frames from clients and tier-2 daemons. Default <see cref="ProtocolLimits.Default"/> (64 KiB payloads).</summary>
    public ProtocolLimits Limits { get; set; } = ProtocolLimits.Default;

    /// <summary>Tasks one client connection may have in flight; beyond it the task is answered REJECT TooManyInFlight. Default 1,024.</summary>
    public int MaxInFlightPerConnection { get; set; } = 1024;

    /// <summary>Tasks in flight towards one tier-2 daemon; a full link is skipped like a down one. Default 16,384.</summary>
    public int MaxInFlightPerTier2 { get; set; } = 16 * 1024;

    /// <summary>Tasks in flight in the whole daemon (TCP and UDP together). Default 65,536.</summary>
    public int MaxInFlight { get; set; } = 64 * 1024;

    /// <summary>Client connections accepted at once; more are closed at once. Default 10,000.</summary>
    public int MaxConnections { get; set; } = 10_000;

    /// <summary>
    /// Client connections accepted at once from one source address; more from that address are closed at once. Trusted
    /// sources (VIP boxes, which carry many clients) are not counted. Default 100.
    /// </summary>
    public int MaxConnectionsPerSource { get; set; } = 100;

    /// <summary>
    /// A frame, once its first byte has arrived, must be complete (header and payload) within this time, or the
    /// connection is closed (slowloris). Default 10 s.
    /// </summary>
    public TimeSpan FrameTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A client connection with no task in flight that sends nothing for this long is closed; the clock starts at the
    /// last bytes received or the last answer sent, whichever is later. Default 5 minutes.
    /// </summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Answer bytes a client connection may leave unread before tier-1 stops reading its tasks. Default 1 MiB.</summary>
    public int MaxConnectionBacklogBytes { get; set; } = 1024 * 1024;

    /// <summary>How long tier-2 has to answer a FORWARD before the next tier-2 is tried. Default 2 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long a trusted source has to send its PROXY header. Default 5 s.</summary>
    public TimeSpan ProxyHeaderTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Cap on a PROXY v2 header's length field (address block and TLVs). Default 512 bytes.</summary>
    public int MaxProxyHeaderLength { get; set; } = 512;

    /// <summary>Deadline to connect to a tier-2 daemon. Default 2 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>First delay before reconnecting to a tier-2 daemon; doubles (with jitter) up to <see cref="ReconnectMaxDelay"/>. Default 100 ms.</summary>
    public TimeSpan ReconnectMinDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest delay between reconnection attempts. Default 5 s.</summary>
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Interval of the PING health check on each tier-2 link. Default 1 s.</summary>
    public TimeSpan PingInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A link whose last PONG is older than this is taken out of rotation until the next PONG. Default 3 s.</summary>
    public TimeSpan PingTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>Consecutive request timeouts after which a link is taken out of rotation until it answers again. Default 3.</summary>
    public int FailureThreshold { get; set; } = 3;

    /// <summary>Retry-after (ms) put in the REJECT Unavailable/Timeout tier-1 sends when no tier-2 answered. Default 500.</summary>
    public uint UnavailableRetryAfterMs { get; set; } = 500;

    /// <summary>Retry-after (ms) put in REJECT TooManyInFlight. Default 50.</summary>
    public uint TooManyInFlightRetryAfterMs { get; set; } = 50;

    /// <summary>How long <see cref="Tier1Server.StopAsync"/> waits for tasks in flight before closing. Default 5 s.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (string.IsNullOrEmpty(Id) || Encoding.UTF8.GetByteCount(Id) > byte.MaxValue)
        {
            throw new ArgumentException("Tier1:Id must be 1 to 255 UTF-8 bytes", nameof(Id));
        }

        if (Listen is null)
        {
            throw new ArgumentException("Tier1:Listen is required", nameof(Listen));
        }

        if (Tier2.Count is 0 or > 64)
        {
            throw new ArgumentException("Tier1:Tier2 must list 1 to 64 tier-2 daemons", nameof(Tier2));
        }

        ArgumentNullException.ThrowIfNull(Limits);
        Limits.Validate();
        Positive(MaxInFlightPerConnection, nameof(MaxInFlightPerConnection));
        Positive(MaxInFlightPerTier2, nameof(MaxInFlightPerTier2));
        Positive(MaxConnections, nameof(MaxConnections));
        Positive(MaxConnectionsPerSource, nameof(MaxConnectionsPerSource));
        Positive(FailureThreshold, nameof(FailureThreshold));
        if (MaxInFlight is < 1 or > 1 << 24)
        {
            throw new ArgumentException("Tier1:MaxInFlight must be between 1 and 16,777,216", nameof(MaxInFlight));
        }

        if (MaxConnectionBacklogBytes < 4096)
        {
            throw new ArgumentException("Tier1:MaxConnectionBacklogBytes must be at least 4096", nameof(MaxConnectionBacklogBytes));
        }

        if (MaxProxyHeaderLength is < ProxyProtocol.IPv6AddressBlockLength or > 65535)
        {
            throw new ArgumentException("Tier1:MaxProxyHeaderLength must be between 36 and 65535", nameof(MaxProxyHeaderLength));
        }

        Duration(RequestTimeout, nameof(RequestTimeout));
        Duration(ProxyHeaderTimeout, nameof(ProxyHeaderTimeout));
        Duration(FrameTimeout, nameof(FrameTimeout));
        Duration(IdleTimeout, nameof(IdleTimeout));
        Duration(ConnectTimeout, nameof(ConnectTimeout));
        Duration(ReconnectMinDelay, nameof(ReconnectMinDelay));
        Duration(ReconnectMaxDelay, nameof(ReconnectMaxDelay));
        Duration(PingInterval, nameof(PingInterval));
        Duration(PingTimeout, nameof(PingTimeout));
        if (ReconnectMaxDelay < ReconnectMinDelay)
        {
            throw new ArgumentException("Tier1:ReconnectMaxDelay must not be below ReconnectMinDelay", nameof(ReconnectMaxDelay));
        }

        if (DrainTimeout < TimeSpan.Zero)
        {
            throw new ArgumentException("Tier1:DrainTimeout must not be negative", nameof(DrainTimeout));
        }
    }

    private static void Positive(int value, string name)
    {
        if (value < 1)
        {
            throw new ArgumentException($"Tier1:{name} must be at least 1", name);
        }
    }

    private static void Duration(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero || value > TimeSpan.FromHours(1))
        {
            throw new ArgumentException($"Tier1:{name} must be between 0 and 1 hour", name);
        }
    }
}
