using System.Buffers.Binary;
using System.Diagnostics.Metrics;
using System.Net;
using System.Security.Cryptography;
using System.Text;

namespace Vip.Tickets;

/// <summary>Options of a <see cref="TicketIssuer"/> (configuration section <c>Tickets</c> of a tier-2 daemon).</summary>
public sealed class TicketIssuerOptions
{
    /// <summary>How long a ticket stays valid after it is issued. Default 30 s; 1 s .. 1 h.</summary>
    public TimeSpan Lifetime { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> when a value is out of range.</summary>
    public void Validate()
    {
        if (Lifetime < TimeSpan.FromSeconds(1) || Lifetime > TimeSpan.FromHours(1))
        {
            throw new ArgumentOutOfRangeException(nameof(Lifetime), Lifetime, "the ticket lifetime must be 1 s .. 1 h");
        }
    }
}

/// <summary>
/// Signs tickets on a tier-2 daemon: writes a version-1 ticket (docs/protocol.md, "Tickets") into the caller's
/// buffer with the active key of its key ring. Thread-safe; allocates nothing per ticket.
/// </summary>
public sealed class TicketIssuer : IDisposable
{
    /// <summary>Longest ticket any call can write (IPv6 client, 255-byte server id): size buffers with it.</summary>
    public const int MaxTicketLength = TicketFormat.MaxLength;

    private readonly TimeProvider _time;
    private readonly long _lifetimeMs;
    private readonly Meter _meter;
    private readonly Counter<long> _issued;
    private volatile TicketKeyRing _keys;

    /// <summary>Creates an issuer.</summary>
    /// <param name="keys">The key ring; its active key signs.</param>
    /// <param name="options">Options; null for the defaults.</param>
    /// <param name="time">Clock for expiry times; null for the system clock.</param>
    /// <param name="meterFactory">Creates the <c>Vip.Tickets</c> meter; null for a private one.</param>
    public TicketIssuer(TicketKeyRing keys, TicketIssuerOptions? options = null, TimeProvider? time = null, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(keys);
        options ??= new TicketIssuerOptions();
        options.Validate();
        _keys = keys;
        _time = time ?? TimeProvider.System;
        Lifetime = options.Lifetime;
        _lifetimeMs = (long)options.Lifetime.TotalMilliseconds;
        _meter = meterFactory?.Create(TicketMetrics.MeterName) ?? new Meter(TicketMetrics.MeterName);
        _issued = _meter.CreateCounter<long>("vip.tickets.issued", "{ticket}", "Tickets signed by this tier-2 daemon.");
    }

    /// <summary>The key ring in use.</summary>
    public TicketKeyRing Keys => _keys;

    /// <summary>The lifetime given to tickets by <see cref="Issue(Span{byte}, string, IPAddress, ulong, out long)"/>.</summary>
    public TimeSpan Lifetime { get; }

    /// <summary>Replaces the key ring (after a key file was rotated); tickets from now on are signed with its active key.</summary>
    public void UpdateKeys(TicketKeyRing keys) => _keys = keys ?? throw new ArgumentNullException(nameof(keys));

    /// <summary>
    /// A random non-zero 64-bit ticket id. Random rather than counted, so that ids from several tier-2 daemons do not
    /// collide in an app server's EXPECT table.
    /// </summary>
    public static ulong NewTicketId()
    {
        Span<byte> b = stackalloc byte[8];
        ulong id;
        do
        {
            TicketCrypto.FillRandom(b);
            id = BinaryPrimitives.ReadUInt64LittleEndian(b);
        }
        while (id == 0);
        return id;
    }

    /// <summary>The exact length of a ticket for <paramref name="serverId"/> and <paramref name="client"/>.</summary>
    public static int GetTicketLength(string serverId, IPAddress client)
    {
        ArgumentNullException.ThrowIfNull(serverId);
        ArgumentNullException.ThrowIfNull(client);
        Span<byte> a = stackalloc byte[16];
        if (!TicketFormat.TryWriteCanonical(client, a, out var v4))
        {
            throw new ArgumentException("the client address must be IPv4 or IPv6", nameof(client));
        }

        return TicketFormat.Length(!v4, Encoding.UTF8.GetByteCount(serverId));
    }

    /// <summary>Signs a ticket that expires <see cref="Lifetime"/> from now.</summary>
    /// <param name="destination">Where the ticket is written; <see cref="MaxTicketLength"/> bytes always suffice.</param>
    /// <param name="serverId">The chosen app server's id (1..255 UTF-8 bytes).</param>
    /// <param name="client">The client's address, as the app server will see it (IPv4-mapped IPv6 is written as IPv4).</param>
    /// <param name="ticketId">The ticket id, also sent in EXPECT (see <see cref="NewTicketId"/>).</param>
    /// <param name="expiresUnixMs">The expiry written into the ticket, Unix milliseconds.</param>
    /// <returns>The number of bytes written.</returns>
    /// <exception cref="ArgumentException">The server id is empty or too long, the address family is not IP, or the destination is too small.</exception>
    public int Issue(Span<byte> destination, string serverId, IPAddress client, ulong ticketId, out long expiresUnixMs)
    {
        expiresUnixMs = _time.GetUtcNow().ToUnixTimeMilliseconds() + _lifetimeMs;
        return Issue(destination, serverId, client, ticketId, expiresUnixMs);
    }

    /// <summary>Signs a ticket with an explicit expiry.</summary>
    /// <inheritdoc cref="Issue(Span{byte}, string, IPAddress, ulong, out long)"/>
    public int Issue(Span<byte> destination, string serverId, IPAddress client, ulong ticketId, long expiresUnixMs)
    {
        ArgumentNullException.ThrowIfNull(serverId);
        var idLength = Encoding.UTF8.GetByteCount(serverId);
        if (idLength is 0 or > TicketFormat.MaxServerIdLength)
        {
            throw new ArgumentException("the server id must be 1..255 UTF-8 bytes", nameof(serverId));
        }

        var idOffset = WriteHead(destination, client, ticketId, expiresUnixMs, idLength);
        Encoding.UTF8.GetBytes(serverId, destination.Slice(idOffset, idLength));
        return Sign(destination, idOffset + idLength);
    }

    /// <summary>Signs a ticket for a server id given as UTF-8 bytes (avoids re-encoding a cached id).</summary>
    /// <inheritdoc cref="Issue(Span{byte}, string, IPAddress, ulong, out long)"/>
    public int Issue(Span<byte> destination, ReadOnlySpan<byte> serverIdUtf8, IPAddress client, ulong ticketId, long expiresUnixMs)
    {
        if (serverIdUtf8.Length is 0 or > TicketFormat.MaxServerIdLength)
        {
            throw new ArgumentException("the server id must be 1..255 UTF-8 bytes", nameof(serverIdUtf8));
        }

        var idOffset = WriteHead(destination, client, ticketId, expiresUnixMs, serverIdUtf8.Length);
        serverIdUtf8.CopyTo(destination[idOffset..]);
        return Sign(destination, idOffset + serverIdUtf8.Length);
    }

    /// <inheritdoc/>
    public void Dispose() => _meter.Dispose();

    // Writes everything up to the server id bytes; returns the offset of the server id.
    internal int WriteHead(Span<byte> d, IPAddress client, ulong ticketId, long expiresUnixMs, int idLength)
    {
        ArgumentNullException.ThrowIfNull(client);
        Span<byte> address = stackalloc byte[16];
        if (!TicketFormat.TryWriteCanonical(client, address, out var v4))
        {
            throw new ArgumentException("the client address must be IPv4 or IPv6", nameof(client));
        }

        var length = TicketFormat.Length(!v4, idLength);
        if (d.Length < length)
        {
            throw new ArgumentException($"the destination holds {d.Length} bytes; this ticket needs {length}", nameof(d));
        }

        var keys = _keys;
        d[0] = TicketFormat.Version;
        BinaryPrimitives.WriteUInt32BigEndian(d[TicketFormat.KeyIdOffset..], keys.Active.Id);
        BinaryPrimitives.WriteUInt64BigEndian(d[TicketFormat.TicketIdOffset..], ticketId);
        BinaryPrimitives.WriteInt64BigEndian(d[TicketFormat.ExpiresOffset..], expiresUnixMs);
        TicketCrypto.FillRandom(d.Slice(TicketFormat.NonceOffset, TicketFormat.NonceLength));
        d[TicketFormat.FamilyOffset] = v4 ? (byte)4 : (byte)6;
        var a = v4 ? address[12..] : address;
        a.CopyTo(d[TicketFormat.AddressOffset..]);
        var idLengthOffset = TicketFormat.AddressOffset + a.Length;
        d[idLengthOffset] = (byte)idLength;
        return idLengthOffset + 1;
    }

    private int Sign(Span<byte> d, int signedLength)
    {
        // The key id written in WriteHead and the secret used here must agree even if UpdateKeys runs in between.
        var keyId = BinaryPrimitives.ReadUInt32BigEndian(d[TicketFormat.KeyIdOffset..]);
        var keys = _keys;
        if (!keys.TryGetKey(keyId, out var key))
        {
            key = keys.Active;
            BinaryPrimitives.WriteUInt32BigEndian(d[TicketFormat.KeyIdOffset..], key.Id);
        }

        key.Hmac.Compute(d[..signedLength], d.Slice(signedLength, TicketFormat.MacLength));
        _issued.Add(1);
        return signedLength + TicketFormat.MacLength;
    }
}

/// <summary>Names shared by the ticket metrics.</summary>
public static class TicketMetrics
{
    /// <summary>The meter of the ticket issuer and verifier.</summary>
    public const string MeterName = "Vip.Tickets";
}
