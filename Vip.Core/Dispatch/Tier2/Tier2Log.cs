using Microsoft.Extensions.Logging;

namespace Vip.Dispatch.Tier2;

/// <summary>Log messages of the tier-2 daemon (event ids 3000–3099).</summary>
internal static partial class Tier2Log
{
    [LoggerMessage(3000, LogLevel.Information, "Tier-2 {Id} listening for tier-1 on {Listen} and for app servers on {Control}; {Servers} server(s), {Clients} client(s), {Networks} network rule(s) loaded")]
    public static partial void Started(ILogger logger, string id, string listen, string control, int servers, int clients, int networks);

    [LoggerMessage(3001, LogLevel.Information, "Tier-2 {Id} stopping")]
    public static partial void Stopping(ILogger logger, string id);

    [LoggerMessage(3002, LogLevel.Debug, "Bad frame from {Peer}: {Reason}; closing")]
    public static partial void BadFrame(ILogger logger, string peer, string reason);

    [LoggerMessage(3003, LogLevel.Warning, "Connection limit of {Limit} reached on the {Port} port; refusing {Peer}")]
    public static partial void ConnectionLimit(ILogger logger, int limit, string port, string peer);

    [LoggerMessage(3010, LogLevel.Information, "App server {ServerId} registered from {Peer}: service {Service}, capacity {Capacity}")]
    public static partial void Registered(ILogger logger, string serverId, string peer, string service, int capacity);

    [LoggerMessage(3011, LogLevel.Warning, "Registration of {ServerId} from {Peer} refused: {Reason}")]
    public static partial void RegisterRefused(ILogger logger, string serverId, string peer, string reason);

    [LoggerMessage(3012, LogLevel.Information, "App server {ServerId} deregistered")]
    public static partial void Deregistered(ILogger logger, string serverId);

    [LoggerMessage(3013, LogLevel.Information, "Control link of app server {ServerId} closed; it is out of the candidate set until it registers again")]
    public static partial void ControlLinkClosed(ILogger logger, string serverId);

    [LoggerMessage(3014, LogLevel.Warning, "Control link of {ServerId} stuck in a send for over {TimeoutMs} ms; closing it")]
    public static partial void ControlLinkStuck(ILogger logger, string serverId, long timeoutMs);

    [LoggerMessage(3015, LogLevel.Debug, "Heartbeat for {ServerId} on a link registered as {LinkServer}; ignored")]
    public static partial void StrayHeartbeat(ILogger logger, string serverId, string linkServer);

    [LoggerMessage(3016, LogLevel.Warning, "App server {ServerId} not heard from for {SilentMs} ms (expiry {ExpireMs} ms); it is out of the candidate set until its next heartbeat")]
    public static partial void HeartbeatExpired(ILogger logger, string serverId, long silentMs, long expireMs);

    [LoggerMessage(3017, LogLevel.Information, "App server {ServerId} heard from again; back in the candidate set")]
    public static partial void HeartbeatReturned(ILogger logger, string serverId);

    [LoggerMessage(3018, LogLevel.Information, "Tier-2 {Id} warming up for up to {GraceMs} ms: until then 'no matching server' is answered Unavailable, so tier-1 tries another tier-2 daemon ({Awaited} remembered app server(s) awaited)")]
    public static partial void WarmingUp(ILogger logger, string id, long graceMs, int awaited);

    [LoggerMessage(3019, LogLevel.Information, "Tier-2 {Id} warm after {ElapsedMs} ms: {Linked} app server(s) linked, {Missing} remembered server(s) not heard from")]
    public static partial void Warm(ILogger logger, string id, long elapsedMs, int linked, int missing);

    [LoggerMessage(3020, LogLevel.Warning, "ADMIN from {Peer} refused: {Reason}")]
    public static partial void AdminRefused(ILogger logger, string peer, string reason);

    [LoggerMessage(3021, LogLevel.Information, "ADMIN {Command} from {Peer}: status {Status}")]
    public static partial void AdminDone(ILogger logger, string command, string peer, int status);

    [LoggerMessage(3030, LogLevel.Warning, "Store write for {What} failed; the change is served from memory and retried: {Reason}")]
    public static partial void StoreWriteFailed(ILogger logger, string what, string reason);

    [LoggerMessage(3040, LogLevel.Error, "Unexpected failure handling a FORWARD from {Peer}")]
    public static partial void DispatchFailed(ILogger logger, Exception exception, string peer);
}
