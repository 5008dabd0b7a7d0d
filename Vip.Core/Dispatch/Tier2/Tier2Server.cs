using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Vip.Protocol;
using Vip.Selection;
using Vip.Store;
using Vip.Tickets;
using SelectionState = Vip.Selection.ServerState;
using StoreState = Vip.Store.ServerState;
using WireState = Vip.Protocol.ServerState;

namespace Vip.Dispatch.Tier2;

/// <summary>
/// A tier-2 daemon, hostable in any process: the listen port takes FORWARD and PING from tier-1 daemons (many
/// in flight per connection, answered by request id); the control port takes app servers' control links
/// (REGISTER, HEARTBEAT, DEREGISTER) and <c>vipd ctl</c>'s ADMIN frames. For each FORWARD it resolves the
/// client's attributes, selects an app server, signs a ticket, sends EXPECT to that server over its control
/// link and — only once the EXPECT is on its way — answers REDIRECT, or REJECT with the reason.
/// </summary>
/// <example>
/// <code>
/// await using var tier2 = new Tier2Server(new Tier2Options { DatabasePath = "tier2.db", TicketKeyFile = "ticket.key" });
/// await tier2.StartAsync();
/// Console.WriteLine($"tier-1 → {tier2.ListenEndPoint}, app servers → {tier2.ControlEndPoint}");
/// </code>
/// </example>
public sealed partial class Tier2Server : IAsyncDisposable
{
    private readonly Tier2Options _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly SelectionEngine _engine;
    private readonly TicketIssuer _issuer;
    private readonly long _lifetimeMs;
    private readonly byte[] _adminToken;
    private readonly ConcurrentDictionary<string, LinkedServer> _linked = new(StringComparer.Ordinal);
    private readonly Lock _registrationGate = new(); // REGISTER, DEREGISTER and link loss change engine and _linked together
    private readonly ConcurrentDictionary<long, ControlLink> _controlLinks = new();
    private readonly ConcurrentDictionary<ForwardLink, byte> _forwardLinks = new();
    private readonly ClientAddressCache _addresses = new(65_536);
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _loops = [];
    private readonly Meter _meter;
    private readonly Counter<long> _redirects;
    private readonly Counter<long> _rejects;
    private readonly Counter<long> _expects;
    private VipStore? _store;
    private Socket? _listenSocket;
    private Socket? _controlSocket;
    private ITimer? _watchdog;
    private long _nextLinkId;
    private long _startedTimestamp;
    private long _warmUntilTimestamp;
    private volatile bool _warm;
    private HashSet<string>? _awaited; // remembered servers not yet registered since start; guarded by _registrationGate
    private int _started;
    private int _stopped;

    /// <summary>Creates a tier-2 daemon; nothing is opened or bound until <see cref="StartAsync"/>.</summary>
    /// <param name="options">Configuration (validated here).</param>
    /// <param name="keys">The ticket keys; null to load <see cref="Tier2Options.TicketKeyFile"/>.</param>
    /// <param name="loggerFactory">Logging; null for none.</param>
    /// <param name="timeProvider">Clock for heartbeat expiry and ticket expiry; null for the system clock.</param>
    /// <param name="random">Randomness for the policies (seed it for deterministic tests); null for a shared one.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    /// <exception cref="TicketKeyFileException">No keys were given and the key file cannot be read.</exception>
    public Tier2Server(Tier2Options options, TicketKeyRing? keys = null, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null, Random? random = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (keys is null && string.IsNullOrEmpty(options.TicketKeyFile))
        {
            throw new ArgumentException("give the tier-2 daemon a ticket key ring or set TicketKeyFile", nameof(options));
        }

        _options = options;
        Time = timeProvider ?? TimeProvider.System;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        Log = _loggerFactory.CreateLogger("Vip.Dispatch.Tier2");
        keys ??= TicketKeyFile.Load(options.TicketKeyFile!);
        _issuer = new TicketIssuer(keys, new TicketIssuerOptions { Lifetime = options.TicketLifetime }, Time);
        _lifetimeMs = (long)options.TicketLifetime.TotalMilliseconds;
        _engine = new SelectionEngine(options.Selection, Time, random, _loggerFactory.CreateLogger<SelectionEngine>());
        _adminToken = string.IsNullOrEmpty(options.AdminToken) ? [] : Encoding.UTF8.GetBytes(options.AdminToken);
        _meter = new Meter("Vip.Dispatch");
        _redirects = _meter.CreateCounter<long>("vip.tier2.redirects", "{task}", "FORWARDs answered with REDIRECT.");
        _rejects = _meter.CreateCounter<long>("vip.tier2.rejects", "{task}", "FORWARDs answered with REJECT, by code.");
        _expects = _meter.CreateCounter<long>("vip.tier2.expects", "{notice}", "EXPECT notices sent to app servers.");
        _meter.CreateObservableGauge("vip.tier2.app_servers.connected", () => _linked.Count, "{server}", "App servers with a live control link.");
        _meter.CreateObservableGauge("vip.tier2.tier1_links", () => _forwardLinks.Count, "{connection}", "Tier-1 connections.");
    }

    /// <summary>The bound listen (tier-1) address; valid after <see cref="StartAsync"/>.</summary>
    public IPEndPoint ListenEndPoint { get; private set; } = new(IPAddress.None, 0);

    /// <summary>The bound control (app servers, <c>vipd ctl</c>) address; valid after <see cref="StartAsync"/>.</summary>
    public IPEndPoint ControlEndPoint { get; private set; } = new(IPAddress.None, 0);

    /// <summary>The configuration.</summary>
    public Tier2Options Options => _options;

    /// <summary>The selection engine (servers, clients, rules as selection sees them).</summary>
    public SelectionEngine Selection => _engine;

    /// <summary>The store; null before <see cref="StartAsync"/>.</summary>
    public VipStore? Store => _store;

    /// <summary>App servers with a live control link now.</summary>
    public int ConnectedServers => _linked.Count;

    internal TimeProvider Time { get; }

    internal ILogger Log { get; }

    /// <summary>
    /// Opens the store (failing with <see cref="StoreOpenException"/> when it is missing, locked or unreadable),
    /// loads servers, clients and rules into the selection engine, and binds both ports (failing with
    /// <see cref="SocketException"/> when one is in use).
    /// </summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            throw new InvalidOperationException("the tier-2 daemon was already started");
        }

        var store = VipStore.Open(new StoreOptions { Path = _options.DatabasePath }, _loggerFactory.CreateLogger<VipStore>(), Time);
        try
        {
            LoadFromStore(store);
            _listenSocket = Bind(_options.ListenEndPoint);
            _controlSocket = Bind(_options.ControlEndPoint);
        }
        catch
        {
            _listenSocket?.Dispose();
            store.Dispose();
            throw;
        }

        _store = store;
        ListenEndPoint = (IPEndPoint)_listenSocket.LocalEndPoint!;
        ControlEndPoint = (IPEndPoint)_controlSocket.LocalEndPoint!;
        BeginWarmUp(store.Snapshot.Servers.Keys); // before the first FORWARD or REGISTER can be accepted
        _loops.Add(Task.Run(() => AcceptForwardLinksAsync(_listenSocket), CancellationToken.None));
        _loops.Add(Task.Run(() => AcceptControlLinksAsync(_controlSocket), CancellationToken.None));
        // Often enough to catch a stuck send and to log a heartbeat expiry within a tenth of the expiry window.
        var period = TimeSpan.FromMilliseconds(Math.Clamp(Math.Min(_options.ControlSendTimeout.TotalMilliseconds / 4, _engine.Options.ExpireAfter.TotalMilliseconds / 10), 50, 1000));
        _watchdog = Time.CreateTimer(static s => ((Tier2Server)s!).CheckStuckLinks(), this, period, period);
        var snapshot = store.Snapshot;
        Tier2Log.Started(Log, _options.Id, ListenEndPoint.ToString(), ControlEndPoint.ToString(), snapshot.Servers.Count, snapshot.Clients.Count, snapshot.Networks.Count);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Stops: closes both listeners, lets every tier-1 connection finish the batch it is handling, closes the
    /// control links, and waits for the store to make every accepted change durable.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (_store is null || Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return; // never started (or start failed), or already stopped
        }

        Tier2Log.Stopping(Log, _options.Id);
        _listenSocket?.Dispose();
        _controlSocket?.Dispose();
        if (_watchdog is not null)
        {
            await _watchdog.DisposeAsync().ConfigureAwait(false);
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        foreach (var link in _controlLinks.Values)
        {
            link.Close();
        }

        try
        {
            await Task.WhenAll(_loops).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        if (_store is not null)
        {
            await _store.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _engine.Dispose();
        _issuer.Dispose();
        _meter.Dispose();
        _stopping.Dispose();
    }

    private static Socket Bind(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(endPoint);
            socket.Listen(1024);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private void LoadFromStore(VipStore store)
    {
        var snapshot = store.Snapshot;
        _engine.RegisterMany(snapshot.Servers.Values.Select(s => ToSelection(s.Record)), SelectionState.Unknown);
        _engine.ReplaceClients(snapshot.Clients.Values.Select(c => new Selection.ClientRecord(c.Id, c.Attributes)));
        _engine.SetNetworkRules(snapshot.Networks.Values.Select(n => new Selection.NetworkRule(n.Network, n.Attributes)));
        _engine.Publish();
    }

    private static ServerRegistration ToSelection(AppServerRecord r) => new(r.Id, r.Service, r.Capacity, r.Attributes);

    // ------------------------------------------------------------------ accept loops

    // One accept loop serves both ports; each says how many links it holds, its cap, and how to start a link.
    private async Task AcceptLoopAsync(Socket listener, string port, Func<int> count, int max, Func<Socket, Task> start)
    {
        var running = new List<Task>();
        while (true)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or OperationCanceledException or SocketException { SocketErrorCode: SocketError.OperationAborted or SocketError.Interrupted })
            {
                break;
            }
            catch (SocketException)
            {
                continue;
            }

            if (count() >= max)
            {
                Tier2Log.ConnectionLimit(Log, max, port, socket.RemoteEndPoint?.ToString() ?? "?");
                socket.Dispose();
                continue;
            }

            running.RemoveAll(t => t.IsCompleted);
            running.Add(start(socket));
        }

        await Task.WhenAll(running).ConfigureAwait(false);
    }

    private Task AcceptForwardLinksAsync(Socket listener) => AcceptLoopAsync(listener, "listen", () => _forwardLinks.Count, _options.MaxTier1Connections, socket =>
    {
        var link = new ForwardLink(this, socket, _options.Limits);
        _forwardLinks[link] = 0;
        return RunForwardLinkAsync(link);
    });

    private async Task RunForwardLinkAsync(ForwardLink link)
    {
        await Task.Yield();
        try
        {
            await link.RunAsync(_stopping.Token).ConfigureAwait(false);
        }
        finally
        {
            _forwardLinks.TryRemove(link, out _);
        }
    }

    private Task AcceptControlLinksAsync(Socket listener) => AcceptLoopAsync(listener, "control", () => _controlLinks.Count, _options.MaxControlConnections, socket =>
    {
        socket.NoDelay = true;
        var link = new ControlLink(socket, _options.MaxControlBuffer, Interlocked.Increment(ref _nextLinkId));
        _controlLinks[link.Id] = link;
        return RunControlLinkAsync(link);
    });

    // ------------------------------------------------------------------ control links

    private async Task RunControlLinkAsync(ControlLink link)
    {
        await Task.Yield();
        var stream = new NetworkStream(link.Socket, ownsSocket: false);
        var input = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 4096, leaveOpen: true));
        var reader = new FrameReader(_options.Limits);
        var admin = new List<Task>();
        using var firstFrame = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, link.Closed);
        firstFrame.CancelAfter(_options.FirstFrameTimeout);
        var token = firstFrame.Token;
        var gotFrame = false;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(token).ConfigureAwait(false);
                var buffer = result.Buffer;
                var consumed = buffer.Start;
                var examined = buffer.End;
                var close = false;
                try
                {
                    while (reader.TryParse(buffer, ref consumed, ref examined, out var frame))
                    {
                        if (!gotFrame)
                        {
                            gotFrame = true;
                            firstFrame.CancelAfter(Timeout.InfiniteTimeSpan);
                        }

                        if (!HandleControlFrame(link, frame, admin))
                        {
                            close = true;
                            break;
                        }
                    }
                }
                catch (VipProtocolException ex)
                {
                    Tier2Log.BadFrame(Log, link.RemoteEndPoint.ToString(), ex.Message);
                    close = true;
                }
                finally
                {
                    input.AdvanceTo(consumed, examined);
                }

                await link.FlushAsync(Time).ConfigureAwait(false);
                if (close || result.IsCompleted || link.IsClosed)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping, the link was closed, or no first frame in time.
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            try
            {
                await Task.WhenAll(admin).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException)
            {
            }

            await input.CompleteAsync().ConfigureAwait(false);
            await stream.DisposeAsync().ConfigureAwait(false);
            link.Close();
            _controlLinks.TryRemove(link.Id, out _);
            OnControlLinkClosed(link);
        }
    }

    // Returns false when the link must close after the answers written so far are flushed.
    private bool HandleControlFrame(ControlLink link, in Frame frame, List<Task> admin)
    {
        Span<byte> scratch = frame.Payload.IsSingleSegment ? default : new byte[frame.Payload.Length];
        var payload = frame.PayloadSpan(scratch);
        switch (frame.Type)
        {
            case FrameType.Heartbeat:
                return OnHeartbeat(link, payload);
            case FrameType.Register:
                return OnRegister(link, frame.RequestId, Register.Read(payload));
            case FrameType.Deregister:
                return OnDeregister(link, frame.RequestId, Deregister.Read(payload));
            case FrameType.Admin:
                admin.RemoveAll(t => t.IsCompleted);
                admin.Add(OnAdminAsync(link, frame.RequestId, payload.ToArray()));
                return true;
            case FrameType.Ping:
                if (payload.Length > ProtocolLimits.MaxPingPayload)
                {
                    WriteOn(link, static (w, s) => Tier2Frames.WriteReject(w, s, RejectCode.TooLarge, 0, "PING payload over 64 bytes"u8), frame.RequestId);
                    return false;
                }

                var data = payload.ToArray();
                WriteOn(link, static (w, s) => Tier2Frames.WritePong(w, s.RequestId, s.data), (frame.RequestId, data));
                return true;
            case FrameType.Pong:
                return true;
            default:
                WriteOn(link, static (w, s) => Tier2Frames.WriteReject(w, s.RequestId, RejectCode.Malformed, 0, s.Message),
                    (frame.RequestId, Message: $"the control port does not take {frame.Type} frames"));
                return false;
        }
    }

    private static void WriteOn<TState>(ControlLink link, Action<System.Buffers.IBufferWriter<byte>, TState> write, TState state)
    {
        var writer = link.EnterWrite();
        if (writer is null)
        {
            return;
        }

        try
        {
            write(writer, state);
        }
        finally
        {
            link.ExitWrite();
        }
    }

    private bool OnRegister(ControlLink link, ulong requestId, Register register)
    {
        var id = register.ServerId;
        if (link.ServerId is { } existing && existing != id)
        {
            Refuse($"this control link already belongs to server '{existing}'");
            return false;
        }

        var attributes = new Dictionary<string, string>(register.Attributes.Count, StringComparer.Ordinal);
        foreach (var (k, v) in register.Attributes)
        {
            attributes[k] = v;
        }

        var capacity = register.Capacity > int.MaxValue ? int.MaxValue : (int)register.Capacity;
        var service = register.Service.ToIPEndPoint();
        var registration = new ServerRegistration(id, service, capacity, attributes);
        if (registration.Validate(_engine.Options) is { } problem)
        {
            Refuse(problem);
            return false;
        }

        LinkedServer? previous;
        lock (_registrationGate)
        {
            try
            {
                var durable = _store!.RegisterServerAsync(new AppServerRegistration(id, service, attributes, capacity));
                _ = WatchStoreWrite(durable, "registration of " + id);
            }
            catch (Exception ex) when (ex is ArgumentException or VipStoreException or ObjectDisposedException)
            {
                Refuse(ex.Message);
                return false;
            }

            if (!_engine.TryRegister(registration, out _, out var error))
            {
                Refuse(error);
                return false;
            }

            var linked = new LinkedServer(id, Encoding.UTF8.GetBytes(id), register.Service, registration, link);
            link.ServerId = id;
            link.Server = linked;
            if (_awaited is { } awaited && awaited.Remove(id) && awaited.Count == 0)
            {
                _awaited = null;
                EndWarmUp(); // every remembered server is back: no reason to wait longer
            }

            _linked.TryGetValue(id, out previous);
            _linked[id] = linked;
            if (IsAdminDrained(id))
            {
                _engine.Heartbeat(id, new ServerHeartbeat(0, 0, Draining: true));
            }
        }

        if (previous is not null && !ReferenceEquals(previous.Link, link))
        {
            // The server came back on a new link; the old one is stale (its closing finds itself replaced).
            previous.Link.Close();
        }

        WriteOn(link, static (w, s) => FrameWriter.Write(w, s.requestId, s.ok),
            (requestId, ok: new RegisterOk((uint)_engine.Options.HeartbeatInterval.TotalMilliseconds, (uint)_engine.Options.ExpireAfter.TotalMilliseconds)));
        Tier2Log.Registered(Log, id, link.RemoteEndPoint.ToString(), service.ToString(), capacity);
        return true;

        void Refuse(string reason)
        {
            Tier2Log.RegisterRefused(Log, id, link.RemoteEndPoint.ToString(), reason);
            WriteOn(link, static (w, s) => Tier2Frames.WriteReject(w, s.requestId, RejectCode.Malformed, 0, s.reason), (requestId, reason));
        }
    }

    // HEARTBEAT := serverId:str8 loadPermille:u16 activeTasks:u32 state:u8
    private bool OnHeartbeat(ControlLink link, ReadOnlySpan<byte> payload)
    {
        var r = new PayloadReader(payload);
        var id = r.ReadNonEmptyStr8("server id");
        var load = r.ReadU16();
        var active = r.ReadU32();
        var state = r.ReadU8();
        r.EnsureEnd();
        if (state > 1)
        {
            VipProtocolException.Throw(ProtocolError.Malformed, $"unknown server state {state}");
        }

        var linked = link.Server;
        if (linked is null || !id.SequenceEqual(linked.IdUtf8))
        {
            Tier2Log.StrayHeartbeat(Log, Encoding.UTF8.GetString(id), link.ServerId ?? "(none)");
            WriteOn(link, static (w, _) => Tier2Frames.WriteReject(w, 0, RejectCode.Malformed, 0, "HEARTBEAT before REGISTER on this link; register again"u8), 0);
            return false;
        }

        var draining = state == (byte)WireState.Draining;
        var storeState = draining ? StoreState.Draining : StoreState.Up;
        var activeTasks = active > int.MaxValue ? int.MaxValue : (int)active;
        _store!.Heartbeat(linked.Id, storeState, load, activeTasks);
        if (!_engine.Heartbeat(linked.Id, new ServerHeartbeat(load, activeTasks, draining || IsAdminDrained(linked.Id))))
        {
            // Removed by an operator while connected: make it register again.
            WriteOn(link, static (w, _) => Tier2Frames.WriteReject(w, 0, RejectCode.Malformed, 0, "this server is not registered here; register again"u8), 0);
            return false;
        }

        return true;
    }

    private bool OnDeregister(ControlLink link, ulong requestId, Deregister deregister)
    {
        var id = deregister.ServerId;
        if (link.ServerId != id)
        {
            WriteOn(link, static (w, s) => Tier2Frames.WriteReject(w, s, RejectCode.Malformed, 0, "DEREGISTER for a server not registered on this link"u8), requestId);
            return false;
        }

        lock (_registrationGate)
        {
            _engine.Deregister(id);
            _linked.TryRemove(new KeyValuePair<string, LinkedServer>(id, link.Server!));
            link.Server = null;
            link.ServerId = null;
            _ = WatchStoreWrite(_store!.DeregisterServerAsync(id), "deregistration of " + id);
        }

        WriteOn(link, static (w, s) => FrameWriter.Write(w, s.requestId, s.ok),
            (requestId, ok: new RegisterOk((uint)_engine.Options.HeartbeatInterval.TotalMilliseconds, (uint)_engine.Options.ExpireAfter.TotalMilliseconds)));
        Tier2Log.Deregistered(Log, id);
        return true;
    }

    private void OnControlLinkClosed(ControlLink link)
    {
        if (link.Server is not { } linked)
        {
            return;
        }

        lock (_registrationGate)
        {
            if (!_linked.TryRemove(new KeyValuePair<string, LinkedServer>(linked.Id, linked)))
            {
                return; // replaced by a newer link, or deregistered
            }

            // Without a control link no EXPECT can reach it: out of the candidates at once (not heard from)
            // rather than after its heartbeat expiry. It stays listed, and returns when it registers again.
            _engine.TryRegister(linked.Registration, out _, out _, SelectionState.Unknown);
        }

        Tier2Log.ControlLinkClosed(Log, linked.Id);
    }

    private void CheckStuckLinks()
    {
        CheckHeartbeats();
        _ = IsWarmingUp(); // ends the warm-up (and logs it) even when no FORWARD arrives

        var now = Time.GetTimestamp();
        var limit = _options.ControlSendTimeout;
        foreach (var link in _controlLinks.Values)
        {
            var started = link.SendStartedTimestamp;
            if (started != 0 && Time.GetElapsedTime(started, now) > limit)
            {
                Tier2Log.ControlLinkStuck(Log, link.ServerId ?? link.RemoteEndPoint.ToString(), (long)limit.TotalMilliseconds);
                link.Close();
            }
        }
    }

    private bool IsAdminDrained(string id)
        => _store is { } store && store.Snapshot.Servers.TryGetValue(id, out var entry) && entry.Record.AdminDrained;

    private async Task WatchStoreWrite(Task write, string what)
    {
        try
        {
            await write.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is VipStoreException or ObjectDisposedException or InvalidOperationException or IOException)
        {
            Tier2Log.StoreWriteFailed(Log, what, ex.Message);
        }
    }

    /// <summary>An app server with a live control link, with what the hot path needs already encoded. Compared by reference.</summary>
    // ------------------------------------------------------------------ warm-up and heartbeat expiry

    private void BeginWarmUp(IEnumerable<string> remembered)
    {
        _startedTimestamp = Time.GetTimestamp();
        var grace = _options.EffectiveRegistrationGrace;
        if (grace <= TimeSpan.Zero)
        {
            _warm = true;
            return;
        }

        _warmUntilTimestamp = _startedTimestamp + (long)(grace.TotalSeconds * Time.TimestampFrequency);
        lock (_registrationGate)
        {
            var awaited = new HashSet<string>(remembered, StringComparer.Ordinal);
            _awaited = awaited.Count > 0 ? awaited : null;
            Tier2Log.WarmingUp(Log, _options.Id, (long)grace.TotalMilliseconds, awaited.Count);
        }
    }

    /// <summary>
    /// True while the daemon is still hearing from its app servers after start (see
    /// <see cref="Tier2Options.RegistrationGrace"/>); the first call after the deadline ends the warm-up.
    /// </summary>
    internal bool IsWarmingUp()
    {
        if (_warm)
        {
            return false;
        }

        if (Time.GetTimestamp() < Volatile.Read(ref _warmUntilTimestamp))
        {
            return true;
        }

        EndWarmUp();
        return false;
    }

    private void EndWarmUp()
    {
        int missing;
        lock (_registrationGate)
        {
            if (_warm)
            {
                return;
            }

            _warm = true;
            missing = _awaited?.Count ?? 0;
            _awaited = null;
        }

        Tier2Log.Warm(Log, _options.Id, (long)Time.GetElapsedTime(_startedTimestamp).TotalMilliseconds, _linked.Count, missing);
    }

    /// <summary>Logs each linked app server whose heartbeats stopped (once per silence) and its return.</summary>
    private void CheckHeartbeats()
    {
        var expire = _engine.Options.ExpireAfter;
        var servers = _engine.Servers;
        foreach (var linked in _linked.Values)
        {
            if (!servers.TryGetServer(linked.Id, out var entry))
            {
                continue;
            }

            var heard = entry.Live.LastHeardTimestamp;
            var silent = heard == 0 ? TimeSpan.Zero : Time.GetElapsedTime(heard);
            if (silent > expire && !linked.Silent)
            {
                linked.Silent = true;
                Tier2Log.HeartbeatExpired(Log, linked.Id, (long)silent.TotalMilliseconds, (long)expire.TotalMilliseconds);
            }
            else if (silent <= expire && linked.Silent)
            {
                linked.Silent = false;
                Tier2Log.HeartbeatReturned(Log, linked.Id);
            }
        }
    }

    internal sealed class LinkedServer(string id, byte[] idUtf8, WireEndpoint service, ServerRegistration registration, ControlLink link)
    {
        /// <summary>Set by the watchdog when the server's heartbeats stopped (logged once per silence).</summary>
        public bool Silent { get; set; }

        public string Id { get; } = id;

        public byte[] IdUtf8 { get; } = idUtf8;

        public WireEndpoint Service { get; } = service;

        public ServerRegistration Registration { get; } = registration;

        public ControlLink Link { get; } = link;
    }

    /// <summary>
    /// IP addresses of recent clients, so signing a ticket (which takes an <see cref="IPAddress"/>) does not
    /// allocate one per task. Bounded: cleared when full.
    /// </summary>
    private sealed class ClientAddressCache(int capacity)
    {
        private readonly ConcurrentDictionary<WireEndpoint, IPAddress> _map = new();

        public IPAddress Get(in WireEndpoint endpoint)
        {
            var key = endpoint.WithPort(0);
            if (_map.TryGetValue(key, out var address))
            {
                return address;
            }

            if (_map.Count >= capacity)
            {
                _map.Clear();
            }

            address = key.ToIPAddress();
            _map.TryAdd(key, address);
            return address;
        }
    }
}
