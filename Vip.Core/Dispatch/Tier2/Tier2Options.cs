using System.Net;
using System.Text;
using Vip.Protocol;
using Vip.Selection;

namespace Vip.Dispatch.Tier2;

/// <summary>
/// Configuration of a <see cref="Tier2Server"/> (configuration section <c>Tier2</c> of <c>vipd tier2</c>).
/// Every cap and deadline has a documented default; <see cref="Validate"/> runs at start.
/// </summary>
public sealed class Tier2Options
{
    /// <summary>This daemon's id, shown in logs and admin answers (1..255 UTF-8 bytes). Default <c>tier2</c>.</summary>
    public string Id { get; set; } = "tier2";

    /// <summary>Where tier-1 daemons connect (FORWARD, PING). Default 127.0.0.1, port 0 (any free port).</summary>
    public IPEndPoint ListenEndPoint { get; set; } = new(IPAddress.Loopback, 0);

    /// <summary>Where app servers hold their control links and <c>vipd ctl</c> connects. Default 127.0.0.1, port 0.</summary>
    public IPEndPoint ControlEndPoint { get; set; } = new(IPAddress.Loopback, 0);

    /// <summary>The LiteDB file holding servers, clients and network rules. Required.</summary>
    public string DatabasePath { get; set; } = "";

    /// <summary>The ticket key file (made by <c>vipd keygen</c>); used when no key ring is given to the server.</summary>
    public string? TicketKeyFile { get; set; }

    /// <summary>The token ADMIN frames must carry. Null or empty: every ADMIN frame is refused (REJECT Unauthorized).</summary>
    public string? AdminToken { get; set; }

    /// <summary>How long a ticket stays valid: 1 s to 5 min (app servers refuse longer-lived tickets). Default 30 seconds.</summary>
    public TimeSpan TicketLifetime { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Tier-1 connections accepted at once; more are closed at accept. Default 1,024.</summary>
    public int MaxTier1Connections { get; set; } = 1024;

    /// <summary>Control-port connections (app servers and <c>vipd ctl</c>) accepted at once. Default 16,384.</summary>
    public int MaxControlConnections { get; set; } = 16_384;

    /// <summary>Bytes queued towards one app server before its control link is deemed stuck and closed. Default 1 MiB.</summary>
    public int MaxControlBuffer { get; set; } = 1024 * 1024;

    /// <summary>A send to an app server that does not complete in this time closes its control link. Default 5 seconds.</summary>
    public TimeSpan ControlSendTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>A control connection must send its first frame (REGISTER or ADMIN) within this time. Default 10 seconds.</summary>
    public TimeSpan FirstFrameTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The warm-up after start: while app servers are still connecting, a FORWARD that finds no matching server
    /// (or only full ones) is answered REJECT <c>Unavailable</c> instead, so tier-1 asks another tier-2 daemon and
    /// clients retry, rather than being told "no matching server" by a daemon that has not heard from anyone yet.
    /// Ends early once every app server the store remembers has registered again. Null (the default): one heartbeat
    /// expiry window (<see cref="SelectionOptions.ExpireAfter"/>, 3 s by default); zero: no warm-up. At most 5 minutes.
    /// </summary>
    public TimeSpan? RegistrationGrace { get; set; }

    /// <summary>The warm-up in effect: <see cref="RegistrationGrace"/>, or the heartbeat expiry window when unset.</summary>
    public TimeSpan EffectiveRegistrationGrace => RegistrationGrace ?? Selection.ExpireAfter;

    /// <summary>
    /// Selection: policy, binding keys, unknown clients, heartbeat interval and expiry, alternatives, retry-after
    /// (configuration section <c>Selection</c>; see <see cref="SelectionOptions"/>).
    /// </summary>
    public SelectionOptions Selection { get; set; } = new();

    /// <summary>Frame caps on both ports. Default <see cref="ProtocolLimits.Default"/>.</summary>
    public ProtocolLimits Limits { get; set; } = ProtocolLimits.Default;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value.</summary>
    public void Validate()
    {
        if (Encoding.UTF8.GetByteCount(Id ?? "") is 0 or > 255)
        {
            throw new ArgumentException("Tier2:Id must be 1..255 UTF-8 bytes", nameof(Id));
        }

        ArgumentNullException.ThrowIfNull(ListenEndPoint);
        ArgumentNullException.ThrowIfNull(ControlEndPoint);
        if (string.IsNullOrWhiteSpace(DatabasePath))
        {
            throw new ArgumentException("Tier2:Db (the LiteDB file) is required", nameof(DatabasePath));
        }

        if (AdminToken is { Length: > 0 } && Encoding.UTF8.GetByteCount(AdminToken) > 255)
        {
            throw new ArgumentException("the admin token is longer than 255 UTF-8 bytes", nameof(AdminToken));
        }

        // App servers refuse tickets that claim to live longer than their verifier's MaxLifetime (5 min by default).
        if (TicketLifetime < TimeSpan.FromSeconds(1) || TicketLifetime > TimeSpan.FromMinutes(5))
        {
            throw new ArgumentException("Tier2:TicketLifetime must be 1 s .. 5 min", nameof(TicketLifetime));
        }

        if (MaxTier1Connections is < 1 or > 1_000_000)
        {
            throw new ArgumentException("Tier2:MaxTier1Connections must be 1 .. 1,000,000", nameof(MaxTier1Connections));
        }

        if (MaxControlConnections is < 1 or > 1_000_000)
        {
            throw new ArgumentException("Tier2:MaxControlConnections must be 1 .. 1,000,000", nameof(MaxControlConnections));
        }

        if (MaxControlBuffer is < 4096 or > 256 * 1024 * 1024)
        {
            throw new ArgumentException("Tier2:MaxControlBuffer must be 4 KiB .. 256 MiB", nameof(MaxControlBuffer));
        }

        if (ControlSendTimeout <= TimeSpan.Zero || FirstFrameTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("Tier2:ControlSendTimeout and Tier2:FirstFrameTimeout must be positive");
        }

        if (RegistrationGrace is { } grace && (grace < TimeSpan.Zero || grace > TimeSpan.FromMinutes(5)))
        {
            throw new ArgumentException("Tier2:RegistrationGrace must be 0 .. 5 minutes", nameof(RegistrationGrace));
        }

        ArgumentNullException.ThrowIfNull(Limits);
        Limits.Validate();
        ArgumentNullException.ThrowIfNull(Selection);
        var problems = Selection.Validate();
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", problems), nameof(Selection));
        }
    }
}
