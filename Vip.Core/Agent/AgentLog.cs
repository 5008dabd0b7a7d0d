using Microsoft.Extensions.Logging;

namespace Vip.Agent;

/// <summary>Log messages of the app-server agent (event ids 4000–4099).</summary>
internal static partial class AgentLog
{
    [LoggerMessage(4000, LogLevel.Information, "App server {ServerId} accepting claims on {EndPoint}, registering with {Count} tier-2 daemon(s)")]
    public static partial void Started(ILogger logger, string serverId, string endPoint, int count);

    [LoggerMessage(4001, LogLevel.Information, "Registered with tier-2 {EndPoint}; heartbeat every {IntervalMs} ms")]
    public static partial void Registered(ILogger logger, string endPoint, int intervalMs);

    [LoggerMessage(4002, LogLevel.Warning, "Control link to tier-2 {EndPoint} failed: {Reason}; reconnecting")]
    public static partial void ControlLinkFailed(ILogger logger, string endPoint, string reason);

    [LoggerMessage(4003, LogLevel.Warning, "Tier-2 {EndPoint} refused the registration: {Code} {Message}")]
    public static partial void RegisterRejected(ILogger logger, string endPoint, string code, string message);

    [LoggerMessage(4004, LogLevel.Debug, "Deregistering from tier-2 {EndPoint} failed: {Reason}")]
    public static partial void DeregisterFailed(ILogger logger, string endPoint, string reason);

    [LoggerMessage(4010, LogLevel.Debug, "Claim from {Client} denied: {Reason} ({Message})")]
    public static partial void ClaimDenied(ILogger logger, string client, string reason, string message);

    [LoggerMessage(4011, LogLevel.Debug, "Claim from {Client} accepted (ticket {TicketId:x16})")]
    public static partial void ClaimAccepted(ILogger logger, string client, ulong ticketId);

    [LoggerMessage(4012, LogLevel.Debug, "Connection from {Client} closed before a valid CLAIM: {Reason}")]
    public static partial void ClaimAborted(ILogger logger, string client, string reason);

    [LoggerMessage(4013, LogLevel.Warning, "Connection limit of {Limit} reached; refusing {Client}")]
    public static partial void ConnectionLimit(ILogger logger, int limit, string client);

    [LoggerMessage(4014, LogLevel.Error, "The application's handler failed for {Client}")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, string client);

    [LoggerMessage(4015, LogLevel.Warning, "EXPECT notice dropped: {Count} notices held, the cap")]
    public static partial void ExpectDropped(ILogger logger, int count);

    [LoggerMessage(4020, LogLevel.Information, "App server {ServerId} stopping: draining {Active} connection(s)")]
    public static partial void Stopping(ILogger logger, string serverId, int active);

    [LoggerMessage(4030, LogLevel.Debug, "Sample task {Kind} failed")]
    public static partial void TaskFailed(ILogger logger, Exception exception, string kind);

    [LoggerMessage(4031, LogLevel.Debug, "Sample app connection from {Client} ended: {Reason}")]
    public static partial void SampleConnectionEnded(ILogger logger, string client, string reason);
}
