using Microsoft.Extensions.Logging;

namespace Vip.Client;

/// <summary>Log messages of the client library (event ids 5300–5399).</summary>
internal static partial class ClientLog
{
    [LoggerMessage(5300, LogLevel.Debug, "Attempt {Attempt} failed ({Reason}); retrying in {DelayMs} ms")]
    public static partial void Retrying(ILogger logger, int attempt, string reason, long delayMs);

    [LoggerMessage(5301, LogLevel.Debug, "Task rejected: {Code} ({Message})")]
    public static partial void Rejected(ILogger logger, Vip.Protocol.RejectCode code, string message);
}
