using System.Diagnostics.Metrics;

namespace Vip.Forwarding;

/// <summary>
/// The instruments of the VIP box, on the meter <c>Vip.Forwarding</c> (see docs/operations.md; watch them with
/// <c>dotnet-counters monitor -n vipd --counters Vip.Forwarding</c>). Byte and datagram totals are kept in plain
/// counters updated with one interlocked add per read and published through observable instruments, so the relay
/// loop never touches a tag list.
/// </summary>
internal sealed class ForwardingMetrics : IDisposable
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "Vip.Forwarding";

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _accepted;
    private readonly UpDownCounter<long> _active;
    private readonly Counter<long> _refused;
    private readonly Counter<long> _connectFailures;
    private readonly Counter<long> _backendTransitions;
    private readonly UpDownCounter<long> _udpSessionsActive;
    private readonly Counter<long> _udpSessionsCreated;
    private readonly Counter<long> _udpDropped;
    private long _bytesToBackend;
    private long _bytesToClient;
    private long _datagramsToBackend;
    private long _datagramsToClient;

    public ForwardingMetrics(IMeterFactory? meterFactory, Func<IEnumerable<Backend>> backends)
    {
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        _accepted = _meter.CreateCounter<long>("vip.forwarding.connections.accepted", "{connection}", "TCP connections accepted from clients");
        _active = _meter.CreateUpDownCounter<long>("vip.forwarding.connections.active", "{connection}", "TCP connections being relayed");
        _refused = _meter.CreateCounter<long>("vip.forwarding.connections.refused", "{connection}", "Client connections closed at once (tag reason: limit, source_limit, no_backend, draining)");
        _connectFailures = _meter.CreateCounter<long>("vip.forwarding.backend.connect_failures", "{connection}", "Failed connect attempts to a backend (tag backend)");
        _backendTransitions = _meter.CreateCounter<long>("vip.forwarding.backend.transitions", "{transition}", "Backends going up or down (tags backend, state)");
        _meter.CreateObservableCounter("vip.forwarding.bytes", ObserveBytes, "By", "Bytes relayed (tag direction: to_backend, to_client)");
        _meter.CreateObservableGauge("vip.forwarding.backend.up", () => ObserveBackends(backends()), "{backend}", "1 when a backend is up, 0 when down (tag backend)");
        _udpSessionsActive = _meter.CreateUpDownCounter<long>("vip.forwarding.udp.sessions.active", "{session}", "UDP sessions open");
        _udpSessionsCreated = _meter.CreateCounter<long>("vip.forwarding.udp.sessions.created", "{session}", "UDP sessions created");
        _udpDropped = _meter.CreateCounter<long>("vip.forwarding.udp.datagrams.dropped", "{datagram}", "Datagrams dropped (tag reason: session_limit, no_backend, send_error)");
        _meter.CreateObservableCounter("vip.forwarding.udp.datagrams", ObserveDatagrams, "{datagram}", "Datagrams relayed (tag direction: to_backend, to_client)");
    }

    public long BytesToBackend => Interlocked.Read(ref _bytesToBackend);

    public long BytesToClient => Interlocked.Read(ref _bytesToClient);

    public void Accepted() => _accepted.Add(1);

    public void ActiveChanged(int delta) => _active.Add(delta);

    public void Refused(string reason) => _refused.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void ConnectFailed(Backend backend) => _connectFailures.Add(1, new KeyValuePair<string, object?>("backend", backend.Address));

    public void BackendTransition(Backend backend, bool up)
        => _backendTransitions.Add(1, new KeyValuePair<string, object?>("backend", backend.Address), new KeyValuePair<string, object?>("state", up ? "up" : "down"));

    public void AddBytes(bool toBackend, int count)
    {
        if (toBackend)
        {
            Interlocked.Add(ref _bytesToBackend, count);
        }
        else
        {
            Interlocked.Add(ref _bytesToClient, count);
        }
    }

    public void UdpSessionOpened()
    {
        _udpSessionsCreated.Add(1);
        _udpSessionsActive.Add(1);
    }

    public void UdpSessionClosed() => _udpSessionsActive.Add(-1);

    public void UdpDropped(string reason) => _udpDropped.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void UdpDatagram(bool toBackend)
    {
        if (toBackend)
        {
            Interlocked.Increment(ref _datagramsToBackend);
        }
        else
        {
            Interlocked.Increment(ref _datagramsToClient);
        }
    }

    private IEnumerable<Measurement<long>> ObserveBytes() =>
    [
        new(BytesToBackend, new KeyValuePair<string, object?>("direction", "to_backend")),
        new(BytesToClient, new KeyValuePair<string, object?>("direction", "to_client")),
    ];

    private IEnumerable<Measurement<long>> ObserveDatagrams() =>
    [
        new(Interlocked.Read(ref _datagramsToBackend), new KeyValuePair<string, object?>("direction", "to_backend")),
        new(Interlocked.Read(ref _datagramsToClient), new KeyValuePair<string, object?>("direction", "to_client")),
    ];

    private static IEnumerable<Measurement<int>> ObserveBackends(IEnumerable<Backend> backends)
        => backends.Select(b => new Measurement<int>(b.IsUp ? 1 : 0, new KeyValuePair<string, object?>("backend", b.Address)));

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }
}
