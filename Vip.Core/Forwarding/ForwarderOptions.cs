namespace Vip.Forwarding;

/// <summary>
/// Configuration of the VIP box (configuration section <c>Vip</c>). Every limit has a default; the validator
/// (<see cref="ForwarderOptionsValidator"/>) checks ranges at start and on every reload.
/// </summary>
public sealed class ForwarderOptions
{
    /// <summary>The configuration section these options are bound from.</summary>
    public const string SectionName = "Vip";

    /// <summary>
    /// TCP listen addresses, <c>HOST:PORT</c>, several separated by commas. <c>*:PORT</c> listens on every IPv4 and
    /// IPv6 address. Required. Changing it takes a restart.
    /// </summary>
    public string Listen { get; set; } = "";

    /// <summary>UDP listen address, <c>HOST:PORT</c>; empty (the default) turns UDP forwarding off.</summary>
    public string? UdpListen { get; set; }

    /// <summary>
    /// The TCP backends, in round-robin order. At least one, at most <see cref="MaxBackends"/>. Reloadable: live
    /// connections keep their backend when it is removed.
    /// </summary>
    public IList<BackendOptions> Backends { get; } = [];

    /// <summary>UDP backends; empty (the default) means the same backends (and health) as TCP.</summary>
    public IList<BackendOptions> UdpBackends { get; } = [];

    /// <summary>Send a PROXY protocol v2 header to backends that do not say otherwise. Default false.</summary>
    public bool ProxyProtocol { get; set; }

    /// <summary>How long one connect attempt to a backend may take before the next is tried. Default 3 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>How many backends are tried for one client connection before it is closed. Default 3.</summary>
    public int MaxConnectAttempts { get; set; } = 3;

    /// <summary>A connection with no byte in either direction for this long is closed. Default 5 min.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>On stop, how long live connections may go on before they are cut. Default 30 s.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Most client connections relayed at once; more are closed at once. Default 4 096 (each connection holds two
    /// file descriptors: keep twice this under the process's open-file limit).
    /// </summary>
    public int MaxConnections { get; set; } = 4096;

    /// <summary>Most connections from one client IP address at once; 0 (the default) means only <see cref="MaxConnections"/> applies.</summary>
    public int MaxConnectionsPerSource { get; set; }

    /// <summary>Listen backlog of each TCP listener. Default 1 024.</summary>
    public int ListenBacklog { get; set; } = 1024;

    /// <summary>First read size of a direction, in bytes; reads double while they fill the buffer. Default 16 KiB.</summary>
    public int MinReadSize { get; set; } = 16 * 1024;

    /// <summary>Largest read size, in bytes. Default 256 KiB.</summary>
    public int MaxReadSize { get; set; } = 256 * 1024;

    /// <summary>
    /// Bytes one direction may hold unsent before the forwarder stops reading that side (the pipe's pause
    /// threshold; reading resumes at half). A direction buffers at most this plus one read. Default 512 KiB.
    /// </summary>
    public int MaxBufferedBytes { get; set; } = 512 * 1024;

    /// <summary>
    /// How TCP connections and UDP datagrams are relayed. <see cref="RelayTransport.Auto"/> (the default) uses the
    /// epoll event loops on Linux (x64, arm64) and .NET's socket engine elsewhere. Changing it takes a restart.
    /// </summary>
    public RelayTransport Transport { get; set; } = RelayTransport.Auto;

    /// <summary>Event-loop threads of the epoll transport; 0 (the default) means one per processor, at most 16.</summary>
    public int RelayThreads { get; set; }

    /// <summary>Active and passive health checking.</summary>
    public HealthCheckOptions HealthCheck { get; } = new();

    /// <summary>UDP session settings.</summary>
    public UdpForwarderOptions Udp { get; } = new();

    /// <summary>Most backends in one list.</summary>
    public const int MaxBackends = 256;
}

/// <summary>How the VIP box moves bytes: TCP connections and UDP datagrams (docs/architecture.md, "VIP box").</summary>
public enum RelayTransport
{
    /// <summary>Epoll on Linux x64/arm64, sockets elsewhere.</summary>
    Auto,

    /// <summary>
    /// Level-triggered epoll loops (one thread per processor) calling recv/send directly: one receive and one send
    /// per message, no thread hop. Linux x64/arm64 only.
    /// </summary>
    Epoll,

    /// <summary>.NET's socket engine: a receive loop and a send loop per direction, awaited.</summary>
    Sockets,
}

/// <summary>One backend: where it is, its share of connections, and whether it wants a PROXY header.</summary>
public sealed class BackendOptions
{
    /// <summary><c>HOST:PORT</c> (an IP literal, <c>[v6]:port</c>, or a name resolved when the list is loaded).</summary>
    public string Address { get; set; } = "";

    /// <summary>Relative share in the weighted round robin, 1 to 100. Default 1.</summary>
    public int Weight { get; set; } = 1;

    /// <summary>Send a PROXY v2 header to this backend; null (the default) follows <see cref="ForwarderOptions.ProxyProtocol"/>.</summary>
    public bool? ProxyProtocol { get; set; }

    /// <summary>Largest weight.</summary>
    public const int MaxWeight = 100;
}

/// <summary>How backends are checked.</summary>
public enum HealthCheckMode
{
    /// <summary>No checks: every backend counts as up (failed connects still fall through to the next).</summary>
    None,

    /// <summary>A TCP connect that succeeds within the timeout.</summary>
    Tcp,

    /// <summary>A Vip PING frame answered by a PONG with the same request id (for tier-1 daemons).</summary>
    Ping,
}

/// <summary>Active health checks (interval, rise, fall) and passive marking on failed connects.</summary>
public sealed class HealthCheckOptions
{
    /// <summary>What a check does. Default <see cref="HealthCheckMode.Tcp"/>.</summary>
    public HealthCheckMode Mode { get; set; } = HealthCheckMode.Tcp;

    /// <summary>
    /// Time between two checks of a backend. Default 1 s, so that with <see cref="Fall"/> 3 a dead backend is out of
    /// rotation within about 3 s even when no new client connection fails on it (docs/reliability.md, "Chaos").
    /// </summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long one check may take. Default 1 s.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Consecutive successful checks that bring a down backend up. Default 2.</summary>
    public int Rise { get; set; } = 2;

    /// <summary>Consecutive failures (checks or client connects) that take an up backend down. Default 3.</summary>
    public int Fall { get; set; } = 3;
}

/// <summary>UDP sessions: one per client address, each with its own upstream socket.</summary>
public sealed class UdpForwarderOptions
{
    /// <summary>A session with no datagram either way for this long is closed. Default 30 s.</summary>
    public TimeSpan SessionIdleTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Most sessions at once (each holds one socket); datagrams from new clients beyond it are dropped. Default 1 024.</summary>
    public int MaxSessions { get; set; } = 1024;

    /// <summary>
    /// Receive buffer (SO_RCVBUF) of the UDP listener, in bytes: the datagrams the kernel holds while the forwarder
    /// is busy. A burst beyond it is dropped by the kernel before the forwarder sees it. Default 4 MiB (about 5 000
    /// small datagrams); the kernel grants at most <c>net.core.rmem_max</c> and a warning says so at start.
    /// </summary>
    public int ReceiveBufferSize { get; set; } = 4 * 1024 * 1024;

    /// <summary>
    /// Receive buffer (SO_RCVBUF) of each session's upstream socket, where the backend's replies queue. Memory is
    /// only used while replies wait, so a large bound costs nothing when idle. Default 1 MiB.
    /// </summary>
    public int SessionReceiveBufferSize { get; set; } = 1024 * 1024;

    /// <summary>Largest buffer size either setting accepts.</summary>
    public const int MaxBufferSize = 256 * 1024 * 1024;
}
