using Microsoft.Extensions.Logging;

namespace Vip.Selection;

/// <summary>Log messages of the selection engine (event ids 4300–4399).</summary>
internal static partial class SelectionLog
{
    [LoggerMessage(EventId = 4300, Level = LogLevel.Information, Message = "App server {ServerId} registered at {Service}, capacity {Capacity}")]
    public static partial void ServerRegistered(ILogger logger, string serverId, System.Net.IPEndPoint service, int capacity);

    [LoggerMessage(EventId = 4301, Level = LogLevel.Information, Message = "App server {ServerId} deregistered")]
    public static partial void ServerDeregistered(ILogger logger, string serverId);

    [LoggerMessage(EventId = 4302, Level = LogLevel.Debug, Message = "Published server snapshot {Version} with {Count} servers and client snapshot {ClientVersion} with {Clients} clients")]
    public static partial void Published(ILogger logger, long version, int count, long clientVersion, int clients);

    [LoggerMessage(EventId = 4304, Level = LogLevel.Information, Message = "Loaded {Count} app servers at once, state {State}")]
    public static partial void ServersLoaded(ILogger logger, int count, ServerState state);

    [LoggerMessage(EventId = 4303, Level = LogLevel.Warning, Message = "Registration of {ServerId} refused: {Reason}")]
    public static partial void RegistrationRefused(ILogger logger, string serverId, string reason);
}
