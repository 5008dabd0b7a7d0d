using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Vip.Forwarding;

/// <summary>Log messages of the VIP box (event ids 1000–1099).</summary>
internal static partial class ForwardingLog
{
    [LoggerMessage(1000, LogLevel.Information, "VIP box listening on {EndPoint} ({Transport})")]
    public static partial void Listening(ILogger logger, EndPoint endPoint, string transport);

    [LoggerMessage(1001, LogLevel.Warning, "Backend {Backend} is down ({Reason})")]
    public static partial void BackendDown(ILogger logger, string backend, string reason);

    [LoggerMessage(1002, LogLevel.Information, "Backend {Backend} is up")]
    public static partial void BackendUp(ILogger logger, string backend);

    [LoggerMessage(1003, LogLevel.Debug, "Connect to backend {Backend} failed ({Error}); trying the next")]
    public static partial void ConnectFailed(ILogger logger, string backend, SocketError error);

    [LoggerMessage(1004, LogLevel.Warning, "No backend answered for {Client}; {Suppressed} more such failures not logged in the last period")]
    public static partial void NoBackend(ILogger logger, EndPoint? client, long suppressed);

    [LoggerMessage(1005, LogLevel.Warning, "Connection refused: {Limit} reached ({Max}); {Count} refused since the last such message")]
    public static partial void LimitReached(ILogger logger, string limit, int max, long count);

    [LoggerMessage(1006, LogLevel.Debug, "Connection {Client} -> {Backend} ended by reset or abort ({Error})")]
    public static partial void ConnectionReset(ILogger logger, EndPoint? client, string backend, SocketError error);

    [LoggerMessage(1007, LogLevel.Error, "Connection {Client} -> {Backend} failed unexpectedly")]
    public static partial void ConnectionFailed(ILogger logger, Exception exception, EndPoint? client, string backend);

    [LoggerMessage(1008, LogLevel.Information, "Draining: no longer accepting; {Count} connections may finish within {Deadline}")]
    public static partial void Draining(ILogger logger, int count, TimeSpan deadline);

    [LoggerMessage(1009, LogLevel.Warning, "Drain deadline passed: cutting {Count} connections")]
    public static partial void DrainCut(ILogger logger, int count);

    [LoggerMessage(1010, LogLevel.Information, "Backend list reloaded: {Count} backends ({Added} added, {Removed} removed)")]
    public static partial void BackendsReloaded(ILogger logger, int count, int added, int removed);

    [LoggerMessage(1011, LogLevel.Error, "Backend list reload rejected; keeping the current list")]
    public static partial void ReloadFailed(ILogger logger, Exception exception);

    [LoggerMessage(1012, LogLevel.Warning, "Listen addresses changed in configuration; they take effect after a restart")]
    public static partial void ListenChangeIgnored(ILogger logger);

    [LoggerMessage(1013, LogLevel.Error, "Accepting on {EndPoint} failed ({Error}); retrying")]
    public static partial void AcceptFailed(ILogger logger, EndPoint endPoint, SocketError error);

    [LoggerMessage(1014, LogLevel.Debug, "Connection {Client} -> {Backend} idle for {Idle}: closed")]
    public static partial void IdleTimeout(ILogger logger, EndPoint? client, string backend, TimeSpan idle);

    [LoggerMessage(1015, LogLevel.Debug, "UDP session {Client} -> {Backend} opened")]
    public static partial void UdpSessionOpened(ILogger logger, EndPoint client, string backend);

    [LoggerMessage(1016, LogLevel.Debug, "UDP session {Client} -> {Backend} closed ({Reason})")]
    public static partial void UdpSessionClosed(ILogger logger, EndPoint client, string backend, string reason);

    [LoggerMessage(1017, LogLevel.Warning, "UDP datagrams dropped: {Reason}; {Count} since the last such message")]
    public static partial void UdpDropped(ILogger logger, string reason, long count);

    [LoggerMessage(1018, LogLevel.Error, "UDP receive on {EndPoint} failed ({Error})")]
    public static partial void UdpReceiveFailed(ILogger logger, EndPoint endPoint, SocketError error);

    [LoggerMessage(1019, LogLevel.Debug, "Health check of {Backend} failed: {Reason}")]
    public static partial void CheckFailed(ILogger logger, string backend, string reason);

    [LoggerMessage(1020, LogLevel.Warning,
        "UDP receive buffer of {EndPoint}: {Granted} bytes granted of {Requested} asked (Vip:Udp:ReceiveBufferSize); bursts beyond it are lost: raise net.core.rmem_max")]
    public static partial void UdpReceiveBufferCapped(ILogger logger, EndPoint endPoint, int granted, int requested);

    [LoggerMessage(1021, LogLevel.Error, "Relay event loop: epoll_wait failed (errno {Errno}); retrying")]
    public static partial void RelayLoopFailed(ILogger logger, int errno);

    [LoggerMessage(1022, LogLevel.Information, "TCP relay: {Transport} ({Threads} event threads)")]
    public static partial void RelayTransportChosen(ILogger logger, string transport, int threads);
}

/// <summary>
/// Lets a repeated event be logged at most once per period, reporting how many occurrences were folded in. Used
/// for limit hits, which a flood of clients could otherwise turn into a flood of log lines.
/// </summary>
internal sealed class LogRateLimiter(TimeProvider time, TimeSpan period)
{
    private readonly long _periodTicks = (long)(period.TotalSeconds * time.TimestampFrequency);
    private long _lastLogged = long.MinValue;
    private long _count;

    /// <summary>Counts one occurrence; returns true (with the count since the last log) when it is time to log.</summary>
    public bool ShouldLog(out long count)
    {
        Interlocked.Increment(ref _count);
        var now = time.GetTimestamp();
        var last = Volatile.Read(ref _lastLogged);
        if (last != long.MinValue && now - last < _periodTicks)
        {
            count = 0;
            return false;
        }

        if (Interlocked.CompareExchange(ref _lastLogged, now, last) != last)
        {
            count = 0;
            return false;
        }

        count = Interlocked.Exchange(ref _count, 0);
        return true;
    }
}
