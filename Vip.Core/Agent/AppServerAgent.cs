using System.Buffers;
using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Vip.Protocol;
using Vip.Tickets;

namespace Vip.Agent;

/// <summary>
/// The app-server side of Vip, for any .NET server: registers with every configured tier-2 daemon and keeps
/// heartbeating (load, active tasks, up or draining), reconnecting with jittered backoff; receives the EXPECT
/// notices; accepts client connections on the service port, reads each client's CLAIM within a deadline,
/// verifies its ticket and hands the connection to the application's handler after CLAIM-OK — or answers
/// CLAIM-DENIED with the reason and closes. A client without a valid ticket never reaches the handler.
/// </summary>
/// <example>
/// <code>
/// var options = new AppServerAgentOptions { ServerId = "app-1", TicketKeyFile = "/etc/vip/ticket.key" };
/// options.ControlEndPoints.Add(IPEndPoint.Parse("10.0.0.21:7301"));
/// options.Attributes["gpu"] = "a100";
/// await using var agent = new AppServerAgent(options, async (connection, ct) =>
/// {
///     var stream = connection.AsStream();   // the client's bytes, after its ticket was accepted
///     await stream.WriteAsync("hello"u8.ToArray(), ct);
/// });
/// await agent.StartAsync(ct);
/// </code>
/// </example>
public sealed class AppServerAgent : IAsyncDisposable
{
    private readonly ClaimedConnectionHandler _handler;
    private readonly ILogger _log;
    private readonly TicketVerifier _verifier;
    private readonly ExpectBook _expects;
    private readonly AgentControlLink[] _links;
    private readonly Meter _meter;
    private readonly Counter<long> _claimsAccepted;
    private readonly Counter<long> _claimsDenied;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _background = [];
    private readonly object _connectionsLock = new();
    private readonly HashSet<Task> _connections = [];
    private Socket? _listener;
    private int _active;
    private volatile bool _draining;
    private int _started;
    private int _stopped;

    /// <summary>Creates an agent; nothing is bound or connected until <see cref="StartAsync"/>.</summary>
    /// <param name="options">Configuration (validated here).</param>
    /// <param name="handler">Runs for every connection whose ticket was accepted.</param>
    /// <param name="keys">The ticket keys; null to load <see cref="AppServerAgentOptions.TicketKeyFile"/>.</param>
    /// <param name="loggerFactory">Logging; null for none.</param>
    /// <param name="timeProvider">Clock; null for the system clock.</param>
    /// <param name="random">Randomness for reconnect jitter; null for a shared generator.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    /// <exception cref="TicketKeyFileException">No keys were given and the key file cannot be read.</exception>
    public AppServerAgent(
        AppServerAgentOptions options,
        ClaimedConnectionHandler handler,
        TicketKeyRing? keys = null,
        ILoggerFactory? loggerFactory = null,
        TimeProvider? timeProvider = null,
        Random? random = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(handler);
        options.Validate();
        if (keys is null && string.IsNullOrEmpty(options.TicketKeyFile))
        {
            throw new ArgumentException("give the agent a ticket key ring or set TicketKeyFile", nameof(options));
        }

        Options = options;
        _handler = handler;
        Time = timeProvider ?? TimeProvider.System;
        Random = random ?? Random.Shared;
        loggerFactory ??= NullLoggerFactory.Instance;
        _log = loggerFactory.CreateLogger("Vip.Agent");
        keys ??= TicketKeyFile.Load(options.TicketKeyFile!);
        _verifier = new TicketVerifier(keys, new TicketVerifierOptions
        {
            ServerId = options.ServerId,
            ClockSkew = options.ClockSkew,
            CheckClientAddress = options.VerifyClientAddress,
            RequireExpect = options.RequireExpect,
            ExpectCapacity = options.MaxExpectNotices,
        }, Time, loggerFactory.CreateLogger<TicketVerifier>());
        _expects = new ExpectBook(options.MaxExpectNotices, Time);
        _links = [.. options.ControlEndPoints.Select(e => new AgentControlLink(this, e, _log))];
        _meter = new Meter("Vip.Agent");
        _claimsAccepted = _meter.CreateCounter<long>("vip.agent.claims.accepted", "{claim}", "Claims whose ticket was accepted.");
        _claimsDenied = _meter.CreateCounter<long>("vip.agent.claims.denied", "{claim}", "Claims refused with CLAIM-DENIED.");
        _meter.CreateObservableGauge("vip.agent.connections.active", () => Volatile.Read(ref _active), "{connection}", "Claimed connections being handled.");
        _meter.CreateObservableGauge("vip.agent.control_links.registered", () => RegisteredLinks, "{link}", "Tier-2 daemons this agent is registered with.");
    }

    /// <summary>The configuration.</summary>
    public AppServerAgentOptions Options { get; }

    /// <summary>The bound service address (valid after <see cref="StartAsync"/>).</summary>
    public IPEndPoint LocalEndPoint { get; private set; } = new(IPAddress.None, 0);

    /// <summary>The address sent to the tier-2 daemons (valid after <see cref="StartAsync"/>).</summary>
    public IPEndPoint AdvertisedEndPoint { get; private set; } = new(IPAddress.None, 0);

    /// <summary>Claimed connections being handled now.</summary>
    public int ActiveConnections => Volatile.Read(ref _active);

    /// <summary>How many tier-2 daemons the agent is registered with now.</summary>
    public int RegisteredLinks => _links.Count(l => l.IsRegistered);

    /// <summary>True once <see cref="SetDraining"/>(true) or <see cref="StopAsync"/> was called: heartbeats say draining.</summary>
    public bool IsDraining => _draining;

    internal TimeProvider Time { get; }

    internal Random Random { get; }

    internal IReadOnlyList<AgentControlLink> Links => _links;

    /// <summary>Called for every EXPECT notice received (tests observe ordering with it).</summary>
    internal Action<ulong>? ExpectObserved { get; set; }

    internal int PendingExpects => _expects.Count;

    /// <summary>Tells every tier-2 daemon, at once, that this server takes no new tasks (or takes them again).</summary>
    public void SetDraining(bool draining)
    {
        _draining = draining;
        foreach (var link in _links)
        {
            link.Kick();
        }
    }

    /// <summary>Binds the service port and starts the control links. Throws <see cref="SocketException"/> if the port cannot be bound.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            throw new InvalidOperationException("the agent was already started");
        }

        var listener = new Socket(Options.ListenEndPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(Options.ListenEndPoint);
            listener.Listen(512);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        _listener = listener;
        LocalEndPoint = (IPEndPoint)listener.LocalEndPoint!;
        var advertised = Options.AdvertisedEndPoint ?? LocalEndPoint;
        if (advertised.Address.Equals(IPAddress.Any) || advertised.Address.Equals(IPAddress.IPv6Any))
        {
            listener.Dispose();
            throw new ArgumentException("the agent listens on a wildcard address: set AdvertisedEndPoint to the address clients should connect to");
        }

        AdvertisedEndPoint = advertised.Port == 0 ? new IPEndPoint(advertised.Address, LocalEndPoint.Port) : advertised;
        _background.Add(Task.Run(() => AcceptLoopAsync(listener), CancellationToken.None));
        foreach (var link in _links)
        {
            _background.Add(Task.Run(() => link.RunAsync(_stopping.Token), CancellationToken.None));
        }

        _background.Add(Task.Run(() => PurgeLoopAsync(_stopping.Token), CancellationToken.None));
        AgentLog.Started(_log, Options.ServerId, LocalEndPoint.ToString(), _links.Length);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Stops: heartbeats say draining, then DEREGISTER on every link; stops accepting; waits for the handlers of
    /// claimed connections until <paramref name="cancellationToken"/> fires, then cancels them.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        AgentLog.Stopping(_log, Options.ServerId, ActiveConnections);
        SetDraining(true); // every tier-2 daemon hears it now, not at the next heartbeat
        _listener?.Dispose();
        Task[] connections;
        lock (_connectionsLock)
        {
            connections = [.. _connections];
        }

        try
        {
            await Task.WhenAll(connections).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Out of time: cancel the handlers below.
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_background).ConfigureAwait(false);
            lock (_connectionsLock)
            {
                connections = [.. _connections];
            }

            await Task.WhenAll(connections).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        using (var drain = new CancellationTokenSource(Options.DrainTimeout))
        {
            await StopAsync(drain.Token).ConfigureAwait(false);
        }

        _meter.Dispose();
        _verifier.Dispose();
        _stopping.Dispose();
    }

    internal AgentLoad CurrentLoad()
        => Options.LoadProvider?.Invoke() ?? AgentLoad.FromActive((uint)ActiveConnections, Options.Capacity);

    internal Register CreateRegister()
        => new(Options.ServerId, WireEndpoint.From(AdvertisedEndPoint), Options.Capacity, [.. Options.Attributes]);

    internal void OnExpect(ExpectNotice notice)
    {
        // The verifier first: a claim waiting on the book re-verifies as soon as the book has the notice.
        _verifier.Expect(notice.TicketId, notice.Client.ToIPAddress(), notice.ExpiresUnixMs);
        if (!_expects.Add(notice))
        {
            AgentLog.ExpectDropped(_log, _expects.Count);
        }

        ExpectObserved?.Invoke(notice.TicketId);
    }

    private async Task PurgeLoopAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(5), Time);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                _expects.Purge(Options.ClockSkew);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or OperationCanceledException or SocketException { SocketErrorCode: SocketError.OperationAborted or SocketError.Interrupted })
            {
                return;
            }
            catch (SocketException)
            {
                // A connection reset while queued; keep accepting.
                continue;
            }

            if (Interlocked.Increment(ref _active) > Options.MaxConnections)
            {
                Interlocked.Decrement(ref _active);
                AgentLog.ConnectionLimit(_log, Options.MaxConnections, socket.RemoteEndPoint?.ToString() ?? "?");
                socket.Dispose();
                continue;
            }

            var task = HandleClientAsync(socket);
            lock (_connectionsLock)
            {
                if (!task.IsCompleted)
                {
                    _connections.Add(task);
                }
            }

            _ = task.ContinueWith(
                (t, s) =>
                {
                    var self = (AppServerAgent)s!;
                    lock (self._connectionsLock)
                    {
                        self._connections.Remove(t);
                    }
                },
                this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task HandleClientAsync(Socket socket)
    {
        await Task.Yield();
        var remote = socket.RemoteEndPoint as IPEndPoint ?? new IPEndPoint(IPAddress.None, 0);
        var local = socket.LocalEndPoint as IPEndPoint ?? new IPEndPoint(IPAddress.None, 0);
        socket.NoDelay = true;
        var stream = new NetworkStream(socket, ownsSocket: true);
        var input = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 4096, leaveOpen: true));
        var output = PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true));
        try
        {
            var claim = await ReadClaimAsync(input, remote).ConfigureAwait(false);
            if (claim is null)
            {
                return;
            }

            var (requestId, ticket) = claim.Value;
            var (status, info) = await VerifyAsync(ticket, remote).ConfigureAwait(false);
            if (status != TicketStatus.Valid)
            {
                _claimsDenied.Add(1);
                var reason = (ClaimDenyReason)(ushort)status;
                var message = DenyMessage(status);
                AgentLog.ClaimDenied(_log, remote.ToString(), reason.ToString(), message);
                FrameWriter.Write(output, requestId, new ClaimDenied(reason, message));
                await output.FlushAsync(_stopping.Token).ConfigureAwait(false);
                return;
            }

            _claimsAccepted.Add(1);
            AgentLog.ClaimAccepted(_log, remote.ToString(), info!.TicketId);
            FrameWriter.Write(output, requestId, new ClaimOk(Options.ServerId));
            await output.FlushAsync(_stopping.Token).ConfigureAwait(false);
            var connection = new ClaimedConnection(new DuplexPipe(input, output), info, remote, local, _stopping.Token);
            try
            {
                await _handler(connection, _stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
            }
            catch (Exception ex) when (ex is IOException or SocketException)
            {
                AgentLog.ClaimAborted(_log, remote.ToString(), ex.Message);
            }
            catch (Exception ex)
            {
                AgentLog.HandlerFailed(_log, ex, remote.ToString());
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            AgentLog.ClaimAborted(_log, remote.ToString(), ex.Message);
        }
        finally
        {
            await input.CompleteAsync().ConfigureAwait(false);
            await output.CompleteAsync().ConfigureAwait(false);
            socket.Dispose();
            await stream.DisposeAsync().ConfigureAwait(false);
            Interlocked.Decrement(ref _active);
        }
    }

    // Reads exactly one frame, which must be a CLAIM, within the claim deadline; leaves later bytes in the pipe.
    private async Task<(ulong RequestId, byte[] Ticket)?> ReadClaimAsync(PipeReader input, IPEndPoint remote)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        deadline.CancelAfter(Options.ClaimTimeout);
        var reader = new FrameReader(Options.Limits);
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                AgentLog.ClaimAborted(_log, remote.ToString(), "no CLAIM within the deadline");
                return null;
            }

            var buffer = result.Buffer;
            var consumed = buffer.Start;
            var examined = buffer.End;
            try
            {
                if (reader.TryParse(buffer, ref consumed, ref examined, out var frame))
                {
                    if (frame.Type != FrameType.Claim)
                    {
                        AgentLog.ClaimAborted(_log, remote.ToString(), $"first frame is {frame.Type}, not CLAIM");
                        return null;
                    }

                    var payload = frame.Payload.ToArray();
                    try
                    {
                        return (frame.RequestId, Claim.Read(payload).Ticket.ToArray());
                    }
                    catch (VipProtocolException ex)
                    {
                        AgentLog.ClaimAborted(_log, remote.ToString(), ex.Message);
                        return null;
                    }
                }
            }
            catch (VipProtocolException ex)
            {
                AgentLog.ClaimAborted(_log, remote.ToString(), ex.Message);
                return null;
            }
            finally
            {
                input.AdvanceTo(consumed, examined);
            }

            if (result.IsCompleted)
            {
                AgentLog.ClaimAborted(_log, remote.ToString(), "closed before sending a CLAIM");
                return null;
            }
        }
    }

    private async ValueTask<(TicketStatus Status, ClaimInfo? Info)> VerifyAsync(byte[] ticket, IPEndPoint remote)
    {
        var status = _verifier.Verify(ticket, remote.Address, out var verified);
        if (status == TicketStatus.NotExpected)
        {
            // The notice and the client race on different connections: give the notice a moment to land.
            var notice = await _expects.WaitAsync(verified.TicketId, Options.ExpectWait, _stopping.Token).ConfigureAwait(false);
            if (notice is not null)
            {
                status = _verifier.Verify(ticket, remote.Address, out verified);
            }
        }

        if (status != TicketStatus.Valid)
        {
            return (status, null);
        }

        _expects.TryGet(verified.TicketId, out var seen);
        _expects.Remove(verified.TicketId);
        return (status, new ClaimInfo(verified.TicketId, remote, DateTimeOffset.FromUnixTimeMilliseconds(verified.ExpiresUnixMs), seen));
    }

    private static string DenyMessage(TicketStatus status) => status switch
    {
        TicketStatus.BadSignature => "the ticket's signature does not verify",
        TicketStatus.Expired => "the ticket has expired",
        TicketStatus.Replayed => "the ticket was already used",
        TicketStatus.WrongClient => "the ticket was issued to another client address",
        TicketStatus.WrongServer => "the ticket was issued for another app server",
        TicketStatus.UnknownKey => "the ticket's key id is not known here",
        TicketStatus.NotExpected => "no EXPECT notice arrived for this ticket",
        _ => "the bytes are not a ticket",
    };

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }
}
