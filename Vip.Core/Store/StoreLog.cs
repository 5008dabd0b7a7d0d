using Microsoft.Extensions.Logging;

namespace Vip.Store;

/// <summary>Log messages of the store (event ids 4200–4299).</summary>
internal static partial class StoreLog
{
    [LoggerMessage(EventId = 4201, Level = LogLevel.Information, Message = "Store {Path} opened in {ElapsedMs} ms: {Servers} servers, {Clients} clients, {Networks} network rules")]
    public static partial void Opened(ILogger logger, string path, long elapsedMs, int servers, int clients, int networks);

    [LoggerMessage(EventId = 4202, Level = LogLevel.Error, Message = "Store {Path}: writing failed (attempt {Attempt}); {Pending} writes kept in memory, retrying in {DelayMs} ms")]
    public static partial void WriteFailed(ILogger logger, Exception exception, string path, int attempt, long pending, long delayMs);

    [LoggerMessage(EventId = 4203, Level = LogLevel.Information, Message = "Store {Path}: writing works again after {Attempts} failed attempts")]
    public static partial void WriteRecovered(ILogger logger, string path, int attempts);

    [LoggerMessage(EventId = 4204, Level = LogLevel.Critical, Message = "Store {Path}: shut down with {Count} accepted writes not saved; the disk kept failing")]
    public static partial void ShutdownLostWrites(ILogger logger, string path, long count);

    [LoggerMessage(EventId = 4205, Level = LogLevel.Warning, Message = "Store {Path}: writing failed again (attempt {Attempt}): {Reason}; {Pending} writes kept in memory, retrying in {DelayMs} ms")]
    public static partial void WriteStillFailing(ILogger logger, string path, int attempt, string reason, long pending, long delayMs);
}
