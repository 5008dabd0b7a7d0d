using System.Buffers.Binary;
using System.Diagnostics.Metrics;
using System.Net;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Vip.Tickets;

/// <summary>Options of a <see cref="TicketVerifier"/> (configuration section <c>Tickets</c> of an app-server agent).</summary>
public sealed class TicketVerifierOptions
{
    /// <summary>This app server's id, as registered with the tier-2 daemons (1..255 UTF-8 bytes). Required.</summary>
    public string ServerId { get; set; } = "";

    /// <summary>How far past its expiry a ticket is still accepted, for clocks that disagree. Default 2 s; 0 .. 5 min.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Deny a ticket presented from another address than the one it was issued to. Default true; turn it off only
    /// where clients reach the app server through NAT, so the address differs from what the tier-2 saw.
    /// </summary>
    public bool CheckClientAddress { get; set; } = true;

    /// <summary>Strict mode: accept a ticket only after the EXPECT notice for it arrived (<see cref="TicketVerifier.Expect"/>). Default false.</summary>
    public bool RequireExpect { get; set; }

    /// <summary>Tickets remembered for the single-use check. Default 262 144 (about 16 MiB); 1 024 .. 16 777 216.</summary>
    /// <remarks>
    /// A ticket is remembered until its expiry plus <see cref="ClockSkew"/> (forgotten within 128 ms after). When the cache is full the entry that
    /// expires first (to within 128 ms) is forgotten early, and from then on any ticket expiring no later than it is denied as
    /// <see cref="TicketStatus.Expired"/>: the verifier never accepts a ticket it cannot prove unused.
    /// </remarks>
    public int ReplayCacheCapacity { get; set; } = 262_144;

    /// <summary>EXPECT notices held while their tickets are unused and unexpired. Default 65 536; 16 .. 16 777 216. When full, the one expiring first is dropped.</summary>
    public int ExpectCapacity { get; set; } = 65_536;

    /// <summary>Tickets whose expiry lies further ahead than this (plus skew) are refused as <see cref="TicketStatus.Malformed"/>. Default 5 min; 1 s .. 1 day.</summary>
    public TimeSpan MaxLifetime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Throws <see cref="ArgumentException"/> when a value is missing or out of range.</summary>
    public void Validate()
    {
        var idBytes = Encoding.UTF8.GetByteCount(ServerId ?? "");
        if (idBytes is 0 or > TicketFormat.MaxServerIdLength)
        {
            throw new ArgumentException("Tickets:ServerId must be 1..255 UTF-8 bytes", nameof(ServerId));
        }

        if (ClockSkew < TimeSpan.Zero || ClockSkew > TimeSpan.FromMinutes(5))
        {
            throw new ArgumentOutOfRangeException(nameof(ClockSkew), ClockSkew, "Tickets:ClockSkew must be 0 .. 5 min");
        }

        if (ReplayCacheCapacity is < 1024 or > 16_777_216)
        {
            throw new ArgumentOutOfRangeException(nameof(ReplayCacheCapacity), ReplayCacheCapacity, "Tickets:ReplayCacheCapacity must be 1024 .. 16777216");
        }

        if (ExpectCapacity is < 16 or > 16_777_216)
        {
            throw new ArgumentOutOfRangeException(nameof(ExpectCapacity), ExpectCapacity, "Tickets:ExpectCapacity must be 16 .. 16777216");
        }

        if (MaxLifetime < TimeSpan.FromSeconds(1) || MaxLifetime > TimeSpan.FromDays(1))
        {
            throw new ArgumentOutOfRangeException(nameof(MaxLifetime), MaxLifetime, "Tickets:MaxLifetime must be 1 s .. 1 day");
        }
    }
}

/// <summary>What a ticket says, as far as it could be read (zero where the layout was not valid).</summary>
/// <param name="KeyId">The key id in the ticket.</param>
/// <param name="TicketId">The ticket id (as in EXPECT).</param>
/// <param name="ExpiresUnixMs">The expiry, Unix milliseconds.</param>
public readonly record struct TicketInfo(uint KeyId, ulong TicketId, long ExpiresUnixMs);

/// <summary>
/// Verifies the tickets clients present to an app server (CLAIM): layout, key id, HMAC (constant-time), server
/// id, expiry with clock skew, client address, single use, and — in strict mode — a matching EXPECT notice.
/// Every denial has a <see cref="TicketStatus"/> and is counted on the <c>Vip.Tickets</c> meter.
/// Thread-safe; allocates nothing per ticket in steady state.
/// </summary>
public sealed class TicketVerifier : IDisposable
{
    private static readonly KeyValuePair<string, object?>[] ResultTags = BuildTags();

    private readonly TicketVerifierOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly byte[] _serverId;
    private readonly long _skewMs;
    private readonly long _maxLifetimeMs;
    private readonly Lock _gate = new();
    private readonly ReplayCache _used;
    private readonly ExpiringTable<ulong, UInt128> _expected;
    private readonly Meter _meter;
    private readonly Counter<long> _verified;
    private volatile TicketKeyRing _keys;

    /// <summary>Creates a verifier.</summary>
    /// <param name="keys">The key ring; every key in it verifies.</param>
    /// <param name="options">Options (<see cref="TicketVerifierOptions.ServerId"/> is required); validated here.</param>
    /// <param name="time">Clock for expiry checks; null for the system clock.</param>
    /// <param name="logger">Logs denials at Debug; null for none.</param>
    /// <param name="meterFactory">Creates the <c>Vip.Tickets</c> meter; null for a private one.</param>
    public TicketVerifier(TicketKeyRing keys, TicketVerifierOptions options, TimeProvider? time = null, ILogger<TicketVerifier>? logger = null, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _keys = keys;
        _options = options;
        _time = time ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _serverId = Encoding.UTF8.GetBytes(options.ServerId);
        _skewMs = (long)options.ClockSkew.TotalMilliseconds;
        _maxLifetimeMs = (long)options.MaxLifetime.TotalMilliseconds;
        _used = new ReplayCache(options.ReplayCacheCapacity, _maxLifetimeMs + (2 * _skewMs));
        _expected = new ExpiringTable<ulong, UInt128>(options.ExpectCapacity);
        _meter = meterFactory?.Create(TicketMetrics.MeterName) ?? new Meter(TicketMetrics.MeterName);
        _verified = _meter.CreateCounter<long>("vip.tickets.verified", "{ticket}", "Tickets presented to this app server, by result (ok or the denial reason).");
        _meter.CreateObservableGauge("vip.tickets.replay_cache.entries", () => (long)UsedCount, "{ticket}", "Tickets remembered for the single-use check.");
        _meter.CreateObservableGauge("vip.tickets.expects.pending", () => (long)PendingExpects, "{ticket}", "EXPECT notices waiting for their client.");
    }

    /// <summary>The key ring in use.</summary>
    public TicketKeyRing Keys => _keys;

    /// <summary>The options in force.</summary>
    public TicketVerifierOptions Options => _options;

    /// <summary>EXPECT notices held now.</summary>
    public int PendingExpects
    {
        get
        {
            lock (_gate)
            {
                return _expected.Count;
            }
        }
    }

    /// <summary>Tickets remembered now for the single-use check.</summary>
    public int UsedCount
    {
        get
        {
            lock (_gate)
            {
                return _used.Count;
            }
        }
    }

    /// <summary>Replaces the key ring (after a key file was rotated).</summary>
    public void UpdateKeys(TicketKeyRing keys) => _keys = keys ?? throw new ArgumentNullException(nameof(keys));

    /// <summary>
    /// Records an EXPECT notice: a client at <paramref name="client"/> will present ticket <paramref name="ticketId"/>
    /// before <paramref name="expiresUnixMs"/>. Returns false (and records nothing) when that time has already passed.
    /// </summary>
    public bool Expect(ulong ticketId, IPAddress client, long expiresUnixMs)
    {
        ArgumentNullException.ThrowIfNull(client);
        Span<byte> a = stackalloc byte[16];
        if (!TicketFormat.TryWriteCanonical(client, a, out _))
        {
            throw new ArgumentException("the client address must be IPv4 or IPv6", nameof(client));
        }

        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var until = SaturatingAdd(expiresUnixMs, _skewMs);
        if (until < now)
        {
            return false;
        }

        until = Math.Min(until, SaturatingAdd(now, _maxLifetimeMs + _skewMs));
        lock (_gate)
        {
            _expected.Set(ticketId, BinaryPrimitives.ReadUInt128BigEndian(a), until, now);
        }

        return true;
    }

    /// <inheritdoc cref="Verify(ReadOnlySpan{byte}, IPAddress?, out TicketInfo)"/>
    public TicketStatus Verify(ReadOnlySpan<byte> ticket, IPAddress? client) => Verify(ticket, client, out _);

    /// <summary>
    /// Verifies a ticket presented by a client connected from <paramref name="client"/>, and on success marks it used.
    /// </summary>
    /// <param name="ticket">The ticket bytes from CLAIM.</param>
    /// <param name="client">The connecting address; may be null only when <see cref="TicketVerifierOptions.CheckClientAddress"/> is off.</param>
    /// <param name="info">What the ticket says (zeros when its layout is invalid).</param>
    /// <returns><see cref="TicketStatus.Valid"/>, or the denial reason to send in CLAIM-DENIED.</returns>
    public TicketStatus Verify(ReadOnlySpan<byte> ticket, IPAddress? client, out TicketInfo info)
    {
        var status = Check(ticket, client, out info);
        _verified.Add(1, ResultTags[(int)status]);
        if (status != TicketStatus.Valid)
        {
            TicketsLog.TicketDenied(_logger, info.TicketId, status, client);
        }

        return status;
    }

    /// <inheritdoc/>
    public void Dispose() => _meter.Dispose();

    private TicketStatus Check(ReadOnlySpan<byte> ticket, IPAddress? client, out TicketInfo info)
    {
        info = default;
        if (!TicketFormat.TryParse(ticket, out var t))
        {
            return TicketStatus.Malformed;
        }

        info = new TicketInfo(t.KeyId, t.TicketId, t.ExpiresUnixMs);
        if (!_keys.TryGetKey(t.KeyId, out var key))
        {
            return TicketStatus.UnknownKey;
        }

        Span<byte> mac = stackalloc byte[TicketFormat.MacLength];
        key.Hmac.Compute(t.Signed, mac);
        if (!TicketCrypto.MacEquals(mac, t.Mac))
        {
            return TicketStatus.BadSignature;
        }

        if (!t.ServerId.SequenceEqual(_serverId))
        {
            return TicketStatus.WrongServer;
        }

        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var until = SaturatingAdd(t.ExpiresUnixMs, _skewMs);
        if (until < now)
        {
            return TicketStatus.Expired;
        }

        if (t.ExpiresUnixMs > SaturatingAdd(now, _maxLifetimeMs + _skewMs))
        {
            return TicketStatus.Malformed; // signed, but with an expiry no issuer should write
        }

        Span<byte> ticketAddress = stackalloc byte[16];
        if (t.Address.Length == 4)
        {
            ticketAddress[..10].Clear();
            ticketAddress[10] = 0xff;
            ticketAddress[11] = 0xff;
            t.Address.CopyTo(ticketAddress[12..]);
        }
        else
        {
            t.Address.CopyTo(ticketAddress);
        }

        if (_options.CheckClientAddress)
        {
            Span<byte> actual = stackalloc byte[16];
            if (client is null || !TicketFormat.TryWriteCanonical(client, actual, out _) || !actual.SequenceEqual(ticketAddress))
            {
                return TicketStatus.WrongClient;
            }
        }

        var usedKey = BinaryPrimitives.ReadUInt128LittleEndian(t.Mac);
        var expectedAddress = BinaryPrimitives.ReadUInt128BigEndian(ticketAddress);
        lock (_gate)
        {
            _used.Purge(now);
            if (_used.Contains(usedKey))
            {
                return TicketStatus.Replayed;
            }

            if (until <= _used.Floor)
            {
                return TicketStatus.Expired; // the replay cache overflowed and may have forgotten this ticket's first use
            }

            if (_options.RequireExpect)
            {
                _expected.Purge(now);
                if (!_expected.TryGet(t.TicketId, out var address) || address != expectedAddress)
                {
                    return TicketStatus.NotExpected;
                }

                _expected.Remove(t.TicketId);
            }

            _used.Add(usedKey, until, now);
        }

        return TicketStatus.Valid;
    }

    private static long SaturatingAdd(long a, long b)
    {
        var r = a + b;
        return ((a ^ r) & (b ^ r)) < 0 ? (a < 0 ? long.MinValue : long.MaxValue) : r;
    }

    private static KeyValuePair<string, object?>[] BuildTags()
    {
        var values = Enum.GetValues<TicketStatus>();
        var tags = new KeyValuePair<string, object?>[values.Max(v => (int)v) + 1];
        foreach (var v in values)
        {
            tags[(int)v] = new("vip.ticket.result", v == TicketStatus.Valid ? "ok" : v.ToString());
        }

        return tags;
    }
}
