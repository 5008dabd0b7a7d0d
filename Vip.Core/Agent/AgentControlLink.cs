using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Vip.Protocol;
using Vip.Transport;

namespace Vip.Agent;

/// <summary>
/// The agent's link to one tier-2 daemon: connect, REGISTER, heartbeat at the interval the daemon asked for,
/// receive EXPECT notices; on any failure reconnect after a jittered, growing delay. DEREGISTER when stopping.
/// </summary>
internal sealed class AgentControlLink
{
    private const ulong RegisterRequestId = 1;
    private const ulong DeregisterRequestId = 2;

    private readonly AppServerAgent _agent;
    private readonly EndPoint _endPoint;
    private readonly ILogger _log;
    private readonly SemaphoreSlim _kick = new(0, 1);
    private volatile FrameConnection? _connection;
    private TaskCompletionSource<RegisterOk>? _registered;
    private TaskCompletionSource<bool>? _deregistered;
    private int _failures;

    public AgentControlLink(AppServerAgent agent, EndPoint endPoint, ILogger log)
    {
        _agent = agent;
        _endPoint = endPoint;
        _log = log;
    }

    public EndPoint EndPoint => _endPoint;

    /// <summary>True while registered (REGISTER-OK received and the link up).</summary>
    public bool IsRegistered { get; private set; }

    /// <summary>The heartbeat interval the tier-2 daemon asked for (zero before the first REGISTER-OK).</summary>
    public TimeSpan HeartbeatInterval { get; private set; }

    /// <summary>Heartbeats sent on this link since the agent started.</summary>
    public long HeartbeatsSent;

    /// <summary>Sends a heartbeat now (the state changed) instead of at the next tick.</summary>
    public void Kick()
    {
        try
        {
            _kick.Release();
        }
        catch (SemaphoreFullException)
        {
            // A kick is already pending.
        }
    }

    public async Task RunAsync(CancellationToken stopping)
    {
        var options = _agent.Options;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await RunOnceAsync(stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is SocketException or IOException or TimeoutException or VipProtocolException or ObjectDisposedException or OperationCanceledException or RejectedException)
            {
                AgentLog.ControlLinkFailed(_log, _endPoint.ToString() ?? "", ex.Message);
            }
            finally
            {
                IsRegistered = false;
                _connection = null;
            }

            if (stopping.IsCancellationRequested)
            {
                return;
            }

            var delay = Backoff(_failures++, options.ReconnectMinDelay, options.ReconnectMaxDelay, _agent.Random);
            try
            {
                await Task.Delay(delay, _agent.Time, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Full jitter: a uniform delay between 0 and min(max, min·2^attempt), never under a tenth of min.</summary>
    internal static TimeSpan Backoff(int attempt, TimeSpan min, TimeSpan max, Random random)
    {
        var ceiling = min.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 30));
        ceiling = Math.Min(ceiling, max.TotalMilliseconds);
        var floor = min.TotalMilliseconds / 10;
        return TimeSpan.FromMilliseconds(floor + (random.NextDouble() * Math.Max(0, ceiling - floor)));
    }

    private async Task RunOnceAsync(CancellationToken stopping)
    {
        var options = _agent.Options;
        var endPoint = await ResolveAsync(_endPoint, stopping).ConfigureAwait(false);
        await using var connection = await FrameConnection.ConnectAsync(endPoint, options.ConnectTimeout, options.Limits, stopping).ConfigureAwait(false);
        _registered = new TaskCompletionSource<RegisterOk>(TaskCreationOptions.RunContinuationsAsynchronously);
        _deregistered = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var receive = connection.RunAsync(OnFrame, CancellationToken.None);
        _connection = connection;
        var registerSent = false;
        try
        {
            await connection.SendAsync(RegisterRequestId, _agent.CreateRegister(), stopping).ConfigureAwait(false);
            registerSent = true;
            RegisterOk ok;
            try
            {
                ok = await _registered.Task.WaitAsync(options.ConnectTimeout, _agent.Time, stopping).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                throw new TimeoutException($"no REGISTER-OK within {options.ConnectTimeout.TotalSeconds:0.#} s");
            }

            var interval = TimeSpan.FromMilliseconds(ok.HeartbeatIntervalMs);
            if (interval < AppServerAgentOptions.MinHeartbeatInterval)
            {
                interval = AppServerAgentOptions.MinHeartbeatInterval;
            }
            else if (interval > AppServerAgentOptions.MaxHeartbeatInterval)
            {
                interval = AppServerAgentOptions.MaxHeartbeatInterval;
            }

            HeartbeatInterval = interval;
            IsRegistered = true;
            _failures = 0;
            AgentLog.Registered(_log, _endPoint.ToString() ?? "", (int)interval.TotalMilliseconds);

            using var linked = CancellationTokenSource.CreateLinkedTokenSource(stopping, connection.Closed);
            while (!linked.IsCancellationRequested)
            {
                await SendHeartbeatAsync(connection, linked.Token).ConfigureAwait(false);
                try
                {
                    await _kick.WaitAsync(interval, linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (linked.IsCancellationRequested)
                {
                    break;
                }
            }

            if (!stopping.IsCancellationRequested)
            {
                throw new IOException("the tier-2 daemon closed the control link");
            }
        }
        finally
        {
            // Stopping, even before the REGISTER-OK arrived: leave cleanly rather than wait for expiry.
            if (stopping.IsCancellationRequested && registerSent && !connection.Closed.IsCancellationRequested)
            {
                await DeregisterAsync(connection).ConfigureAwait(false);
            }

            connection.Close();
            await receive.ConfigureAwait(false);
        }
    }

    private async Task SendHeartbeatAsync(FrameConnection connection, CancellationToken cancellationToken)
    {
        var load = _agent.CurrentLoad();
        var state = _agent.IsDraining ? ServerState.Draining : ServerState.Up;
        await connection.SendAsync(0, new Heartbeat(_agent.Options.ServerId, load.LoadPermille, load.ActiveTasks, state), cancellationToken).ConfigureAwait(false);
        Interlocked.Increment(ref HeartbeatsSent);
    }

    /// <summary>Tells the tier-2 daemon the server is draining, then that it leaves; waits briefly for the answer.</summary>
    private async Task DeregisterAsync(FrameConnection connection)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await SendHeartbeatAsync(connection, cts.Token).ConfigureAwait(false);
            await connection.SendAsync(DeregisterRequestId, new Deregister(_agent.Options.ServerId), cts.Token).ConfigureAwait(false);
            await _deregistered!.Task.WaitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
        {
            AgentLog.DeregisterFailed(_log, _endPoint.ToString() ?? "", ex.Message);
        }
    }

    private void OnFrame(FrameConnection connection, in Frame frame)
    {
        Span<byte> scratch = frame.Payload.IsSingleSegment ? default : new byte[frame.Payload.Length];
        var payload = frame.PayloadSpan(scratch);
        switch (frame.Type)
        {
            case FrameType.Expect:
            {
                var expect = Expect.Read(payload);
                _agent.OnExpect(new ExpectNotice(expect.TicketId, expect.Client, expect.ExpiresUnixMs, expect.Kind, [.. expect.Attributes]));
                break;
            }

            case FrameType.RegisterOk:
            {
                var ok = RegisterOk.Read(payload);
                if (frame.RequestId == DeregisterRequestId)
                {
                    _deregistered?.TrySetResult(true);
                }
                else
                {
                    _registered?.TrySetResult(ok);
                }

                break;
            }

            case FrameType.Reject:
            {
                var reject = Reject.Read(payload);
                _registered?.TrySetException(new RejectedException(reject));
                _deregistered?.TrySetResult(false);
                AgentLog.RegisterRejected(_log, _endPoint.ToString() ?? "", reject.Code.ToString(), reject.Message);
                connection.Close();
                break;
            }

            case FrameType.Ping:
            {
                var data = payload.ToArray();
                _ = SendPongAsync(connection, frame.RequestId, data);
                break;
            }

            default:
                // Nothing else is sent on a control link to an app server; ignore rather than drop the link.
                break;
        }
    }

    private async Task SendPongAsync(FrameConnection connection, ulong requestId, byte[] data)
    {
        try
        {
            await connection.SendAsync(static (w, s) => FrameWriter.WriteRaw(w, FrameType.Pong, s.requestId, s.data), (requestId, data)).ConfigureAwait(false);
        }
        catch (IOException)
        {
        }
    }

    private static async Task<EndPoint> ResolveAsync(EndPoint endPoint, CancellationToken cancellationToken)
    {
        if (endPoint is DnsEndPoint dns)
        {
            var addresses = await Dns.GetHostAddressesAsync(dns.Host, cancellationToken).ConfigureAwait(false);
            if (addresses.Length == 0)
            {
                throw new SocketException((int)SocketError.HostNotFound);
            }

            return new IPEndPoint(addresses[0], dns.Port);
        }

        return endPoint;
    }

    internal sealed class RejectedException(Reject reject) : Exception($"the tier-2 daemon refused: {reject.Code} {reject.Message}")
    {
        public Reject Reject { get; } = reject;
    }
}
