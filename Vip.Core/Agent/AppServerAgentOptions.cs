using System.Net;
using System.Text;
using Vip.Protocol;

namespace Vip.Agent;

/// <summary>Configuration of an <see cref="AppServerAgent"/>. Every cap and deadline has a documented default.</summary>
public sealed class AppServerAgentOptions
{
    /// <summary>This app server's id, unique among the app servers of one system (1..255 UTF-8 bytes). Required.</summary>
    public string ServerId { get; set; } = "";

    /// <summary>Where the agent accepts client connections. Default 127.0.0.1, port 0 (any free port).</summary>
    public IPEndPoint ListenEndPoint { get; set; } = new(IPAddress.Loopback, 0);

    /// <summary>
    /// The address clients are told to connect to (sent in REGISTER). Default: the bound listen address, which
    /// must then be a specific address (not 0.0.0.0 or ::).
    /// </summary>
    public IPEndPoint? AdvertisedEndPoint { get; set; }

    /// <summary>The tier-2 daemons' control addresses; the agent registers with every one. At least one is required.</summary>
    public IList<EndPoint> ControlEndPoints { get; } = new List<EndPoint>();

    /// <summary>How many tasks this server runs at once at full load (sent in REGISTER). Default 64.</summary>
    public uint Capacity { get; set; } = 64;

    /// <summary>The server's static attributes (sent in REGISTER; at most 32, keys and values ≤ 255 UTF-8 bytes).</summary>
    public IDictionary<string, string> Attributes { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>The path of the ticket key file (made by <c>vipd keygen</c>); used when no key ring is given to the agent.</summary>
    public string? TicketKeyFile { get; set; }

    /// <summary>A client must send its CLAIM within this time after connecting, or it is closed. Default 5 seconds.</summary>
    public TimeSpan ClaimTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Check that the connecting address equals the client address in the ticket. Default true; turn it off only
    /// when clients reach this server through NAT.
    /// </summary>
    public bool VerifyClientAddress { get; set; } = true;

    /// <summary>Strict mode: a ticket is accepted only after the EXPECT notice for it has arrived. Default false.</summary>
    public bool RequireExpect { get; set; }

    /// <summary>
    /// Strict mode: how long a CLAIM whose ticket is otherwise valid waits for its EXPECT notice (the notice and
    /// the client travel on different connections). Default 1 second.
    /// </summary>
    public TimeSpan ExpectWait { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Clock skew tolerated when checking a ticket's expiry. Default 2 seconds.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>EXPECT notices kept at most (when full, the one expiring first is dropped). Default 65,536; 16 .. 16,777,216.</summary>
    public int MaxExpectNotices { get; set; } = 65_536;

    /// <summary>Client connections handled at once; more are closed at accept. Default 1,024.</summary>
    public int MaxConnections { get; set; } = 1024;

    /// <summary>How long <see cref="AppServerAgent.DisposeAsync"/> lets claimed connections finish before cancelling their handlers. Default 30 seconds.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Time allowed to connect to a tier-2 daemon and to get its REGISTER-OK. Default 5 seconds.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>First reconnect delay after a control link fails; doubles per failure up to <see cref="ReconnectMaxDelay"/>, with full jitter. Default 200 ms.</summary>
    public TimeSpan ReconnectMinDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Longest reconnect delay. Default 10 seconds.</summary>
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Heartbeat interval used when a tier-2 daemon asks for a shorter or longer one than the agent accepts:
    /// the REGISTER-OK value is clamped to [50 ms, 60 s].
    /// </summary>
    public static TimeSpan MinHeartbeatInterval => TimeSpan.FromMilliseconds(50);

    /// <summary>See <see cref="MinHeartbeatInterval"/>.</summary>
    public static TimeSpan MaxHeartbeatInterval => TimeSpan.FromSeconds(60);

    /// <summary>
    /// Reports this server's load for heartbeats. Default: the claimed connections being handled, and that count
    /// over <see cref="Capacity"/> in permille.
    /// </summary>
    public Func<AgentLoad>? LoadProvider { get; set; }

    /// <summary>Frame caps on the control links and on the CLAIM. Default <see cref="ProtocolLimits.Default"/>.</summary>
    public ProtocolLimits Limits { get; set; } = ProtocolLimits.Default;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value.</summary>
    public void Validate()
    {
        var idBytes = Encoding.UTF8.GetByteCount(ServerId ?? "");
        if (idBytes is 0 or > 255)
        {
            throw new ArgumentException("ServerId must be 1..255 UTF-8 bytes", nameof(ServerId));
        }

        ArgumentNullException.ThrowIfNull(ListenEndPoint);
        if (ControlEndPoints.Count == 0)
        {
            throw new ArgumentException("at least one tier-2 control address is required", nameof(ControlEndPoints));
        }

        if (Capacity == 0)
        {
            throw new ArgumentException("Capacity must be at least 1", nameof(Capacity));
        }

        if (Attributes.Count > ProtocolLimits.MaxAttributes)
        {
            throw new ArgumentException($"at most {ProtocolLimits.MaxAttributes} attributes", nameof(Attributes));
        }

        foreach (var (k, v) in Attributes)
        {
            if (Encoding.UTF8.GetByteCount(k) is 0 or > 255 || Encoding.UTF8.GetByteCount(v) > 255)
            {
                throw new ArgumentException($"attribute '{k}': keys are 1..255 and values 0..255 UTF-8 bytes", nameof(Attributes));
            }
        }

        Positive(ClaimTimeout, nameof(ClaimTimeout));
        Positive(ExpectWait, nameof(ExpectWait));
        Positive(ConnectTimeout, nameof(ConnectTimeout));
        Positive(DrainTimeout, nameof(DrainTimeout));
        Positive(ReconnectMinDelay, nameof(ReconnectMinDelay));
        if (ReconnectMaxDelay < ReconnectMinDelay)
        {
            throw new ArgumentException("ReconnectMaxDelay must be at least ReconnectMinDelay", nameof(ReconnectMaxDelay));
        }

        if (ClockSkew < TimeSpan.Zero || ClockSkew > TimeSpan.FromMinutes(5))
        {
            throw new ArgumentException("ClockSkew must be between 0 and 5 minutes", nameof(ClockSkew));
        }

        if (MaxExpectNotices is < 16 or > 16_777_216)
        {
            throw new ArgumentException("MaxExpectNotices must be between 16 and 16,777,216", nameof(MaxExpectNotices));
        }

        if (MaxConnections is < 1 or > 1_000_000)
        {
            throw new ArgumentException("MaxConnections must be between 1 and 1,000,000", nameof(MaxConnections));
        }

        ArgumentNullException.ThrowIfNull(Limits);
        Limits.Validate();
    }

    private static void Positive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero)
        {
            throw new ArgumentException($"{name} must be positive", name);
        }
    }
}

/// <summary>What a heartbeat reports.</summary>
/// <param name="ActiveTasks">Tasks running now.</param>
/// <param name="LoadPermille">Load in thousandths of capacity (may exceed 1000 when overloaded; capped at 65,535 on the wire).</param>
public readonly record struct AgentLoad(uint ActiveTasks, ushort LoadPermille)
{
    /// <summary>The load of <paramref name="active"/> tasks out of <paramref name="capacity"/>.</summary>
    public static AgentLoad FromActive(uint active, uint capacity)
        => new(active, (ushort)Math.Min(ushort.MaxValue, capacity == 0 ? 0 : (ulong)active * 1000 / capacity));
}
