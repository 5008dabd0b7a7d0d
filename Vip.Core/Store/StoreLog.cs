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

    [LoggerMessage(EventId = 4207, Level = LogLevel.Information, Message = "Store {Path} migrated to schema {Version} (records packed into pages)")]
    public static partial void Migrated(ILogger logger, string path, int version);

    // Where a slow start-up goes (docs/benchmarks.md, "Store"): the JIT and GC figures are the process's so far, everything before the store included.
    [LoggerMessage(EventId = 4206, Level = LogLevel.Debug, Message = "Store {Path} open phases: lock and header {PrepareMs:F1} ms, LiteDB open {LiteDbMs:F1} ms, documents read {ReadMs:F1} ms; in this process so far: JIT {JitMethods} methods, {JitMs:F0} ms; GC {Collections} collections, {GcPauseMs:F0} ms paused, {AllocatedMB:F1} MB allocated")]
    public static partial void OpenPhases(ILogger logger, string path, double prepareMs, double liteDbMs, double readMs, long jitMethods, double jitMs, int collections, double gcPauseMs, double allocatedMB);
}
