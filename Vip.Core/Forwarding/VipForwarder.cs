using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Vip.Forwarding;

/// <summary>
/// The VIP box: a TCP (and optionally UDP) forwarder that hands each new connection or UDP session to the next
/// healthy backend in weighted round-robin order and relays bytes both ways (docs/architecture.md, "VIP box").
/// </summary>
/// <remarks>
/// <see cref="StartAsync"/> binds the listeners and throws <see cref="SocketException"/> when an address is taken;
/// <see cref="StopAsync"/> drains. The backend list follows the options monitor: a reload changes where new
/// connections go and never touches live ones.
/// </remarks>
public sealed class VipForwarder : IAsyncDisposable
{
    private readonly IOptionsMonitor<ForwarderOptions> _monitor;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ForwardingMetrics _metrics;
    private readonly BackendPool _tcpPool = new();
    private readonly BackendPool _udpPool = new();
    private readonly HealthChecker _health;
    private readonly object _reloadGate = new();
    private ForwarderOptions _options;
    private RelaySettings _relaySettings;
    private bool _separateUdpBackends;
    private TcpForwarder? _tcp;
    private UdpForwarder? _udp;
    private IDisposable? _subscription;
    private int _state; // 0 new, 1 started, 2 stopped

    /// <summary>Creates a forwarder that follows <paramref name="options"/> (reloads included).</summary>
    public VipForwarder(IOptionsMonitor<ForwarderOptions> options, ILoggerFactory? loggerFactory = null, IMeterFactory? meterFactory = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _monitor = options;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Vip.Forwarding");
        _time = timeProvider ?? TimeProvider.System;
        _options = options.CurrentValue;
        _relaySettings = new RelaySettings(_options);
        _metrics = new ForwardingMetrics(meterFactory, AllBackends);
        // Only the TCP list is checked: separate UDP backends (UdpBackends) have no TCP port to probe.
        _health = new HealthChecker(() => Volatile.Read(ref _options), () => _tcpPool.Backends, _metrics, _logger, _time);
    }

    /// <summary>Creates a forwarder with fixed options.</summary>
    public VipForwarder(ForwarderOptions options, ILoggerFactory? loggerFactory = null, IMeterFactory? meterFactory = null, TimeProvider? timeProvider = null)
        : this(new FixedOptionsMonitor(options), loggerFactory, meterFactory, timeProvider)
    {
    }

    /// <summary>The meter name of the forwarder's instruments.</summary>
    public const string MeterName = ForwardingMetrics.MeterName;

    /// <summary>The bound TCP listen addresses (real ports when 0 was configured). Empty before start.</summary>
    public IReadOnlyList<IPEndPoint> TcpEndPoints => _tcp?.EndPoints ?? [];

    /// <summary>The bound UDP address, or null when UDP is off.</summary>
    public IPEndPoint? UdpEndPoint => _udp?.EndPoint;

    /// <summary>TCP connections being connected or relayed.</summary>
    public int ActiveConnections => _tcp?.ActiveConnections ?? 0;

    /// <summary>The UDP listener's receive buffer as the kernel granted it, in bytes (0 when UDP is off).</summary>
    internal int UdpReceiveBufferBytes => _udp?.ReceiveBufferBytes ?? 0;

    /// <summary>Open UDP sessions.</summary>
    public int ActiveUdpSessions => _udp?.ActiveSessions ?? 0;

    /// <summary>Total bytes relayed from clients to backends.</summary>
    public long BytesToBackends => _metrics.BytesToBackend;

    /// <summary>Total bytes relayed from backends to clients.</summary>
    public long BytesToClients => _metrics.BytesToClient;

    /// <summary>The TCP backends in round-robin order, with their health.</summary>
    public IReadOnlyList<BackendStatus> GetBackends() => [.. _tcpPool.Backends.Select(b => b.ToStatus())];

    /// <summary>The UDP backends (the TCP ones unless <see cref="ForwarderOptions.UdpBackends"/> is set).</summary>
    public IReadOnlyList<BackendStatus> GetUdpBackends() => [.. UdpPool.Backends.Select(b => b.ToStatus())];

    private BackendPool UdpPool => _separateUdpBackends ? _udpPool : _tcpPool;

    /// <summary>
    /// Resolves the backends, binds every listener and starts relaying and checking. Throws
    /// <see cref="OptionsValidationException"/> for bad options and <see cref="SocketException"/> when an address is taken.
    /// </summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            throw new InvalidOperationException("the forwarder was started already");
        }

        var options = _monitor.CurrentValue;
        Validate(options);
        var listen = EndPointParser.SplitList(options.Listen).Select(ResolveListen).ToList();
        var udpListen = string.IsNullOrWhiteSpace(options.UdpListen) ? null : ResolveListen(options.UdpListen);
        Apply(options, Resolve(options));

        _tcp = new TcpForwarder(listen, _tcpPool, () => Volatile.Read(ref _options), () => Volatile.Read(ref _relaySettings), _health, _metrics, _logger, _time);
        _tcp.Start();
        if (udpListen is not null)
        {
            _udp = new UdpForwarder(udpListen, UdpPool, !_separateUdpBackends, () => Volatile.Read(ref _options), _health, _metrics, _logger, _time);
            try
            {
                _udp.Start();
            }
            catch
            {
                _tcp.StopAsync(TimeSpan.Zero, CancellationToken.None).GetAwaiter().GetResult();
                throw;
            }
        }

        _health.Start();
        _subscription = _monitor.OnChange(Reload);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Stops accepting, lets live connections finish within <see cref="ForwarderOptions.DrainTimeout"/> (or until
    /// <paramref name="cancellationToken"/> fires), resets what is left, and closes the UDP side.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _state, 2) != 1)
        {
            return;
        }

        _subscription?.Dispose();
        if (_tcp is not null)
        {
            await _tcp.StopAsync(Volatile.Read(ref _options).DrainTimeout, cancellationToken).ConfigureAwait(false);
        }

        if (_udp is not null)
        {
            await _udp.DisposeAsync().ConfigureAwait(false);
        }

        await _health.DisposeAsync().ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref _state) == 1)
        {
            await StopAsync(new CancellationToken(canceled: true)).ConfigureAwait(false);
        }

        _metrics.Dispose();
    }

    private void Reload(ForwarderOptions next, string? name)
    {
        if (Volatile.Read(ref _state) != 1)
        {
            return;
        }

        try
        {
            Validate(next);
            var resolved = Resolve(next);
            lock (_reloadGate)
            {
                if (!string.Equals(next.Listen, _options.Listen, StringComparison.Ordinal)
                    || !string.Equals(next.UdpListen ?? "", _options.UdpListen ?? "", StringComparison.Ordinal))
                {
                    ForwardingLog.ListenChangeIgnored(_logger);
                }

                var (added, removed) = Apply(next, resolved);
                ForwardingLog.BackendsReloaded(_logger, _tcpPool.Backends.Count, added, removed);
            }
        }
        catch (Exception ex) when (ex is OptionsValidationException or SocketException)
        {
            ForwardingLog.ReloadFailed(_logger, ex);
        }
    }

    private (int Added, int Removed) Apply(ForwarderOptions options, (List<Backend> Tcp, List<Backend> Udp) resolved)
    {
        var result = _tcpPool.Update(resolved.Tcp);
        _separateUdpBackends = resolved.Udp.Count > 0;
        _udpPool.Update(resolved.Udp);
        Volatile.Write(ref _relaySettings, new RelaySettings(options));
        Volatile.Write(ref _options, options);
        return result;
    }

    private static (List<Backend> Tcp, List<Backend> Udp) Resolve(ForwarderOptions options)
        => (ResolveBackends("Vip:Backends", options.Backends, options.ProxyProtocol),
            ResolveBackends("Vip:UdpBackends", options.UdpBackends, options.ProxyProtocol));

    private static List<Backend> ResolveBackends(string key, IList<BackendOptions> backends, bool proxyDefault)
    {
        var list = new List<Backend>(backends.Count);
        for (var i = 0; i < backends.Count; i++)
        {
            var b = backends[i];
            IPEndPoint ep;
            try
            {
                ep = EndPointParser.ResolveBackend(b.Address);
            }
            catch (SocketException ex)
            {
                throw new OptionsValidationException(ForwarderOptions.SectionName, typeof(ForwarderOptions),
                    [$"{key}:{i} '{b.Address}' cannot be resolved ({ex.SocketErrorCode})"]);
            }

            list.Add(new Backend(b.Address.Trim(), ep, b.Weight, b.ProxyProtocol ?? proxyDefault));
        }

        return list;
    }

    private static IPEndPoint ResolveListen(string text)
    {
        try
        {
            return EndPointParser.ResolveListen(text);
        }
        catch (SocketException ex)
        {
            throw new OptionsValidationException(ForwarderOptions.SectionName, typeof(ForwarderOptions),
                [$"listen address '{text}' cannot be resolved ({ex.SocketErrorCode})"]);
        }
    }

    private static void Validate(ForwarderOptions options)
    {
        var result = new ForwarderOptionsValidator().Validate(null, options);
        if (result.Failed)
        {
            throw new OptionsValidationException(ForwarderOptions.SectionName, typeof(ForwarderOptions), result.Failures);
        }
    }

    private IEnumerable<Backend> AllBackends()
        => _separateUdpBackends ? _tcpPool.Backends.Concat(_udpPool.Backends) : _tcpPool.Backends;

    private sealed class FixedOptionsMonitor(ForwarderOptions value) : IOptionsMonitor<ForwarderOptions>
    {
        public ForwarderOptions CurrentValue => value;

        public ForwarderOptions Get(string? name) => value;

        public IDisposable? OnChange(Action<ForwarderOptions, string?> listener) => null;
    }
}
