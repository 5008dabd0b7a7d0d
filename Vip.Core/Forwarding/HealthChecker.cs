using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Vip.Protocol;

namespace Vip.Forwarding;

/// <summary>
/// Marks backends up and down: active checks every interval (a TCP connect, or PING answered by PONG), and
/// passive reports from client connects that failed. A backend goes down after <c>Fall</c> failures in a row and
/// comes back after <c>Rise</c> successes in a row. Every change is logged and counted.
/// </summary>
internal sealed class HealthChecker : IAsyncDisposable
{
    private readonly Func<ForwarderOptions> _options;
    private readonly Func<IEnumerable<Backend>> _backends;
    private readonly ForwardingMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stop = new();
    private Task _loop = Task.CompletedTask;
    private long _pingId;

    public HealthChecker(Func<ForwarderOptions> options, Func<IEnumerable<Backend>> backends, ForwardingMetrics metrics, ILogger logger, TimeProvider time)
    {
        _options = options;
        _backends = backends;
        _metrics = metrics;
        _logger = logger;
        _time = time;
    }

    public void Start() => _loop = RunAsync(_stop.Token);

    /// <summary>A client connect to <paramref name="backend"/> failed.</summary>
    public void ConnectFailed(Backend backend, SocketError error)
    {
        _metrics.ConnectFailed(backend);
        ForwardingLog.ConnectFailed(_logger, backend.Address, error);
        var hc = _options().HealthCheck;
        if (hc.Mode != HealthCheckMode.None && backend.ReportFailure(hc.Fall))
        {
            Changed(backend, up: false, $"{hc.Fall} failed connects in a row, last: {error}");
        }
    }

    /// <summary>A client connect to <paramref name="backend"/> succeeded.</summary>
    public void ConnectSucceeded(Backend backend)
    {
        var hc = _options().HealthCheck;
        if (hc.Mode != HealthCheckMode.None && backend.ReportSuccess(hc.Rise))
        {
            Changed(backend, up: true, "");
        }
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            var hc = _options().HealthCheck;
            try
            {
                if (hc.Mode == HealthCheckMode.None)
                {
                    foreach (var b in _backends())
                    {
                        if (b.ForceUp())
                        {
                            Changed(b, up: true, "");
                        }
                    }
                }
                else
                {
                    var checks = _backends().Where(b => !b.Removed).Select(b => CheckAsync(b, hc, cancellationToken)).ToArray();
                    await Task.WhenAll(checks).ConfigureAwait(false);
                }

                await Task.Delay(hc.Interval, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private async Task CheckAsync(Backend backend, HealthCheckOptions hc, CancellationToken cancellationToken)
    {
        var failure = await ProbeAsync(backend, hc, cancellationToken).ConfigureAwait(false);
        if (cancellationToken.IsCancellationRequested || backend.Removed)
        {
            return;
        }

        if (failure is null)
        {
            if (backend.ReportSuccess(hc.Rise))
            {
                Changed(backend, up: true, "");
            }
        }
        else
        {
            ForwardingLog.CheckFailed(_logger, backend.Address, failure);
            if (backend.ReportFailure(hc.Fall))
            {
                Changed(backend, up: false, $"{hc.Fall} failed checks in a row, last: {failure}");
            }
        }
    }

    /// <summary>Runs one check; returns null on success, else why it failed.</summary>
    internal async Task<string?> ProbeAsync(Backend backend, HealthCheckOptions hc, CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(hc.Timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        var socket = new Socket(backend.EndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(backend.EndPoint, linked.Token).ConfigureAwait(false);
            if (hc.Mode == HealthCheckMode.Ping)
            {
                return await PingAsync(socket, backend.ProxyProtocol, linked.Token).ConfigureAwait(false);
            }

            return null;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            return $"no answer within {hc.Timeout.TotalMilliseconds:0} ms";
        }
        catch (SocketException ex)
        {
            return ex.SocketErrorCode.ToString();
        }
        catch (VipProtocolException ex)
        {
            return "bad answer: " + ex.Message;
        }
        finally
        {
            try
            {
                // Linger 0: checks leave no TIME_WAIT sockets behind.
                socket.LingerState = new LingerOption(true, 0);
            }
            catch (SocketException)
            {
            }

            socket.Dispose();
        }
    }

    // PING := (empty), answered by PONG with the same request id (docs/protocol.md, "PING (0x30), PONG (0x31)").
    private async Task<string?> PingAsync(Socket socket, bool proxyProtocol, CancellationToken cancellationToken)
    {
        var buffer = new byte[ProxyProtocol.MaxWrittenLength + FrameHeader.Size];
        var length = proxyProtocol ? ProxyProtocolWriter.Write(buffer, ProxyHeader.Local) : 0;
        var id = (ulong)Interlocked.Increment(ref _pingId);
        new FrameHeader(FrameType.Ping, 0, 0, id).WriteTo(buffer.AsSpan(length));
        length += FrameHeader.Size;
        await socket.SendAsync(buffer.AsMemory(0, length), SocketFlags.None, cancellationToken).ConfigureAwait(false);

        var got = 0;
        while (got < FrameHeader.Size)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(got, FrameHeader.Size - got), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return "closed before answering PING";
            }

            got += n;
        }

        var header = FrameHeader.Read(buffer.AsSpan(0, FrameHeader.Size), ProtocolLimits.MaxPingPayload);
        if (header.Type != FrameType.Pong || header.RequestId != id)
        {
            return $"answered PING with {header.Type} id {header.RequestId}";
        }

        return null;
    }

    private void Changed(Backend backend, bool up, string reason)
    {
        _metrics.BackendTransition(backend, up);
        if (up)
        {
            ForwardingLog.BackendUp(_logger, backend.Address);
        }
        else
        {
            ForwardingLog.BackendDown(_logger, backend.Address, reason);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }
}
