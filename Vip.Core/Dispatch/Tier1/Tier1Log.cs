using System.Net;
using Microsoft.Extensions.Logging;

namespace Vip.Dispatch.Tier1;

/// <summary>Log messages of the tier-1 daemon (event ids 5100–5199).</summary>
internal static partial class Tier1Log
{
    [LoggerMessage(5100, LogLevel.Information, "Tier-1 {Id} listening on tcp {EndPoint}")]
    public static partial void Listening(ILogger logger, string id, EndPoint endPoint);

    [LoggerMessage(5101, LogLevel.Information, "Tier-1 {Id} listening on udp {EndPoint}")]
    public static partial void ListeningUdp(ILogger logger, string id, EndPoint endPoint);

    [LoggerMessage(5102, LogLevel.Information, "Tier-2 {EndPoint} is up")]
    public static partial void Tier2Up(ILogger logger, EndPoint endPoint);

    [LoggerMessage(5103, LogLevel.Warning, "Tier-2 {EndPoint} is down: {Reason}")]
    public static partial void Tier2Down(ILogger logger, EndPoint endPoint, string reason);

    [LoggerMessage(5104, LogLevel.Debug, "Connecting to tier-2 {EndPoint} failed: {Reason}; next try in {DelayMs} ms")]
    public static partial void Tier2ConnectFailed(ILogger logger, EndPoint endPoint, string reason, long delayMs);

    [LoggerMessage(5105, LogLevel.Warning, "Tier-2 {EndPoint} taken out of rotation: {Reason}")]
    public static partial void Tier2Suspect(ILogger logger, EndPoint endPoint, string reason);

    [LoggerMessage(5106, LogLevel.Information, "Tier-2 {EndPoint} back in rotation")]
    public static partial void Tier2Recovered(ILogger logger, EndPoint endPoint);

    [LoggerMessage(5110, LogLevel.Debug, "Client {Peer} broke the protocol: {Reason}")]
    public static partial void ClientProtocolError(ILogger logger, EndPoint peer, string reason);

    [LoggerMessage(5111, LogLevel.Warning, "Connection from {Peer} refused: {Reason}")]
    public static partial void ConnectionRefused(ILogger logger, EndPoint peer, string reason);

    [LoggerMessage(5112, LogLevel.Debug, "Datagram from {Peer} dropped: {Reason}")]
    public static partial void DatagramDropped(ILogger logger, EndPoint peer, string reason);

    [LoggerMessage(5113, LogLevel.Warning, "Tier-2 {EndPoint} broke the protocol: {Reason}")]
    public static partial void Tier2ProtocolError(ILogger logger, EndPoint endPoint, string reason);

    [LoggerMessage(5120, LogLevel.Error, "Unexpected failure in {Where}")]
    public static partial void Unexpected(ILogger logger, string where, Exception exception);

    [LoggerMessage(5121, LogLevel.Information, "Tier-1 {Id} stopping: {InFlight} tasks in flight")]
    public static partial void Stopping(ILogger logger, string id, int inFlight);
}
