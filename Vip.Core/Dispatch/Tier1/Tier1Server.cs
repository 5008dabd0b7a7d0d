using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Vip.Protocol;
using Vip.Transport;

namespace Vip.Dispatch.Tier1;

/// <summary>The state of one tier-2 link, for status pages and tests.</summary>
/// <param name="EndPoint">The tier-2 daemon's address.</param>
/// <param name="Connected">Whether the link is connected.</param>
/// <param name="Available">Whether new tasks may go to it (connected, answering PINGs, not failing, not full).</param>
/// <param name="InFlight">FORWARDs waiting for an answer.</param>
/// <param name="Forwarded">FORWARDs sent since start (failovers included).</param>
/// <param name="Timeouts">FORWARDs it did not answer in time since start.</param>
public sealed record Tier2LinkStatus(EndPoint EndPoint, bool Connected, bool Available, int InFlight, long Forwarded, long Timeouts);

/// <summary>
/// A tier-1 daemon: accepts TASK frames over TCP (many in flight per connection) and UDP (one per datagram),
/// relays each as a FORWARD with the client's real address to a tier-2 daemon over persistent multiplexed links,
/// fails over between tier-2 daemons, and relays the REDIRECT or REJECT back byte for byte.
/// </summary>
/// <remarks>Host it in-process (<see cref="StartAsync"/>/<see cref="StopAsync"/>) or as an <see cref="IHostedService"/>.</remarks>
public sealed class Tier1Server : IHostedService, IAsyncDisposable
{
    private readonly Tier1Options _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Tier1Dispatcher _dispatcher;
    private readonly TrustedSources _trusted;
    private readonly ConcurrentDictionary<Tier1Connection, byte> _connections = new();
    private readonly ConcurrentDictionary<IPAddress, int> _perSource = new();
    private readonly LimitHits _limits;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _loops = [];
    private Socket? _listener;
    private UdpTaskListener? _udp;
    private int _connectionCount;
    private int _state; // 0 new, 1 started, 2 stopped

    /// <summary>Creates a server; nothing is bound until <see cref="StartAsync"/>. Throws <see cref="ArgumentException"/> for invalid options.</summary>
    public Tier1Server(Tier1Options options, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Vip.Dispatch.Tier1");
        _time = timeProvider ?? TimeProvider.System;
        _trusted = new TrustedSources(options.TrustedProxies);
        _dispatcher = new Tier1Dispatcher(options, _time, _logger);
        _limits = new LimitHits(Tier1Metrics.Limits, _logger, _time);
    }

    /// <summary>The bound TCP address (the port is known after <see cref="StartAsync"/>).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint?)_listener?.LocalEndPoint ?? throw new InvalidOperationException("the server is not started");

    /// <summary>The bound UDP address, or null when UDP is not configured.</summary>
    public IPEndPoint? UdpLocalEndPoint => _udp?.LocalEndPoint;

    /// <summary>Client connections open now.</summary>
    public int ConnectionCount => Volatile.Read(ref _connectionCount);

    /// <summary>Tasks waiting for a tier-2 answer now.</summary>
    public int TasksInFlight => _dispatcher.Table.InUse;

    /// <summary>The state of each tier-2 link, in configuration order.</summary>
    public IReadOnlyList<Tier2LinkStatus> GetTier2Status()
        => _dispatcher.Links.Select(l => new Tier2LinkStatus(l.EndPoint, l.IsConnected, l.IsAvailable, l.InFlight, l.Forwarded, l.FailuresTotal)).ToArray();

    /// <summary>Binds the listeners and starts the tier-2 links (they connect in the background). Throws <see cref="SocketException"/> when an address cannot be bound.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            throw new InvalidOperationException("the server was already started");
        }

        var listen = _options.Listen!;
        var listener = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Bind(listen);
            listener.Listen(1024);
            if (_options.UdpListen is not null)
            {
                _udp = new UdpTaskListener(_options.UdpListen, _dispatcher, _options, _trusted, _logger);
            }
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        _listener = listener;
        var stopping = _stopping.Token;
        foreach (var link in _dispatcher.Links)
        {
            _loops.Add(Task.Run(() => link.RunAsync(stopping), CancellationToken.None));
        }

        _loops.Add(Task.Run(() => AcceptLoopAsync(listener, stopping), CancellationToken.None));
        _loops.Add(Task.Run(() => TimerLoopAsync(stopping), CancellationToken.None));
        Tier1Log.Listening(_logger, _options.Id, listener.LocalEndPoint!);
        if (_udp is not null)
        {
            var udp = _udp;
            _loops.Add(Task.Run(() => udp.RunAsync(stopping), CancellationToken.None));
            Tier1Log.ListeningUdp(_logger, _options.Id, udp.LocalEndPoint);
        }

        return Task.CompletedTask;
    }

    /// <summary>Stops accepting, lets tasks in flight finish (up to <see cref="Tier1Options.DrainTimeout"/>), then closes everything.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _state, 2) != 1)
        {
            return;
        }

        _listener?.Dispose();
        Tier1Log.Stopping(_logger, _options.Id, _dispatcher.Table.InUse);
        var deadline = _time.GetTimestamp();
        while (_dispatcher.Table.InUse > 0 && _time.GetElapsedTime(deadline) < _options.DrainTimeout && !cancellationToken.IsCancellationRequested)
        {
            await Task.Delay(10, CancellationToken.None).ConfigureAwait(false);
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        _udp?.Dispose();
        foreach (var c in _connections.Keys)
        {
            c.Abort();
        }

        foreach (var link in _dispatcher.Links)
        {
            link.Disconnect();
        }

        try
        {
            await Task.WhenAll(_loops).WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync(Socket listener, CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(stopping).ConfigureAwait(false);
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset or SocketError.TooManyOpenSockets)
            {
                await Task.Delay(ex.SocketErrorCode == SocketError.TooManyOpenSockets ? 50 : 0, CancellationToken.None).ConfigureAwait(false);
                continue;
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }

            if (Interlocked.Increment(ref _connectionCount) > _options.MaxConnections)
            {
                Interlocked.Decrement(ref _connectionCount);
                _limits.Hit("max_connections", socket.RemoteEndPoint, $"more than {_options.MaxConnections} connections");
                socket.Dispose();
                continue;
            }

            var source = (socket.RemoteEndPoint as IPEndPoint)?.Address;
            if (source is not null && !_trusted.Contains(WireEndpoint.From(source, 0))
                && _perSource.AddOrUpdate(source, 1, static (_, n) => n + 1) > _options.MaxConnectionsPerSource)
            {
                ReleaseSource(source);
                Interlocked.Decrement(ref _connectionCount);
                _limits.Hit("max_connections_per_source", socket.RemoteEndPoint, $"more than {_options.MaxConnectionsPerSource} connections from {source}");
                socket.Dispose();
                continue;
            }

            socket.NoDelay = true;
            _ = ServeAsync(socket, stopping);
        }
    }

    private async Task ServeAsync(Socket socket, CancellationToken stopping)
    {
        Tier1Connection connection;
        try
        {
            connection = new Tier1Connection(socket, _dispatcher, _options, _trusted, _logger, _limits, _time);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            if ((socket.RemoteEndPoint as IPEndPoint)?.Address is { } peer && !_trusted.Contains(WireEndpoint.From(peer, 0)))
            {
                ReleaseSource(peer);
            }

            Interlocked.Decrement(ref _connectionCount);
            socket.Dispose();
            return;
        }

        _connections[connection] = 0;
        Tier1Metrics.Connections.Add(1);
        try
        {
            await Task.Yield();
            await connection.RunAsync(stopping).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Tier1Log.Unexpected(_logger, "client connection", ex);
        }
        finally
        {
            _connections.TryRemove(connection, out _);
            if (!connection.Trusted)
            {
                ReleaseSource(connection.PeerAddress);
            }

            Tier1Metrics.Connections.Add(-1);
            Interlocked.Decrement(ref _connectionCount);
        }
    }

    private async Task TimerLoopAsync(CancellationToken stopping)
    {
        var tick = TimeSpan.FromTicks(Math.Clamp(_options.RequestTimeout.Ticks / 5, TimeSpan.FromMilliseconds(10).Ticks, TimeSpan.FromMilliseconds(200).Ticks));
        var batch = new FlushBatch();
        var lastPing = _time.GetTimestamp();
        using var timer = new PeriodicTimer(tick, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                try
                {
                    _dispatcher.ExpireTimedOut(batch);
                    var now = _time.GetTimestamp();
                    foreach (var entry in _connections)
                    {
                        entry.Key.CheckDeadlines(now);
                    }
                    if (_time.GetElapsedTime(lastPing) >= _options.PingInterval)
                    {
                        lastPing = _time.GetTimestamp();
                        foreach (var link in _dispatcher.Links)
                        {
                            link.Tick(batch);
                        }

                        batch.FlushAll();
                    }
                }
                catch (Exception ex)
                {
                    Tier1Log.Unexpected(_logger, "timer", ex);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void ReleaseSource(IPAddress source)
    {
        // Decrement, and drop the entry at zero so the table holds only sources with open connections.
        while (_perSource.TryGetValue(source, out var n))
        {
            if (n <= 1 ? _perSource.TryRemove(new KeyValuePair<IPAddress, int>(source, n)) : _perSource.TryUpdate(source, n - 1, n))
            {
                return;
            }
        }
    }

    /// <summary>For tests: drops the connection to tier-2 number <paramref name="index"/> (it reconnects).</summary>
    internal void DisconnectTier2(int index) => _dispatcher.Links[index].Disconnect();

    internal Tier1Dispatcher Dispatcher => _dispatcher;
}
