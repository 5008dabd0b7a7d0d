using System.Net;
using System.Net.Sockets;

namespace Vip.Protocol;

/// <summary>
/// An IPv4 or IPv6 address and port as carried on the wire (<c>endpoint</c> in docs/protocol.md), held without
/// allocating. IPv4-mapped IPv6 addresses are stored as IPv4.
/// </summary>
public readonly struct WireEndpoint : IEquatable<WireEndpoint>
{
    private readonly UInt128 _address; // big-endian bytes packed; IPv4 uses the low 32 bits
    private readonly byte _family;     // 4 or 6

    private WireEndpoint(byte family, UInt128 address, ushort port)
    {
        _family = family;
        _address = address;
        Port = port;
    }

    /// <summary>4 for IPv4, 6 for IPv6, 0 for the default (no address).</summary>
    public byte Family => _family;

    /// <summary>The port (0 when unknown).</summary>
    public ushort Port { get; }

    /// <summary>Encoded size on the wire: 1 + 4 + 2 or 1 + 16 + 2.</summary>
    public int WireSize => _family == 6 ? 19 : 7;

    /// <summary>Builds a wire endpoint from raw address bytes (4 or 16) and a port.</summary>
    public static WireEndpoint FromBytes(ReadOnlySpan<byte> address, ushort port)
    {
        if (address.Length == 4)
        {
            return new WireEndpoint(4, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(address), port);
        }

        if (address.Length != 16)
        {
            throw new ArgumentException("an address is 4 or 16 bytes", nameof(address));
        }

        var value = System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(address);
        // ::ffff:a.b.c.d is an IPv4 client seen through a dual-stack socket.
        if (value >> 32 == 0xFFFF)
        {
            return new WireEndpoint(4, (uint)value, port);
        }

        return new WireEndpoint(6, value, port);
    }

    /// <summary>Builds a wire endpoint from an <see cref="IPAddress"/> and port, without allocating.</summary>
    public static WireEndpoint From(IPAddress address, int port)
    {
        ArgumentNullException.ThrowIfNull(address);
        Span<byte> bytes = stackalloc byte[16];
        if (!address.TryWriteBytes(bytes, out var n))
        {
            throw new ArgumentException("unsupported address", nameof(address));
        }

        return FromBytes(bytes[..n], checked((ushort)port));
    }

    /// <summary>Builds a wire endpoint from an <see cref="IPEndPoint"/>.</summary>
    public static WireEndpoint From(IPEndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        return From(endPoint.Address, endPoint.Port);
    }

    /// <summary>Writes the address bytes (4 or 16) and returns how many were written.</summary>
    public int WriteAddress(Span<byte> destination)
    {
        if (_family == 6)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(destination, _address);
            return 16;
        }

        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)_address);
        return 4;
    }

    /// <summary>The same address with another port.</summary>
    public WireEndpoint WithPort(ushort port) => new(_family, _address, port);

    /// <summary>True when the two endpoints have the same address, whatever their ports.</summary>
    public bool SameAddress(in WireEndpoint other) => _family == other._family && _address == other._address;

    /// <summary>Allocates an <see cref="IPAddress"/> for this address.</summary>
    public IPAddress ToIPAddress()
    {
        Span<byte> bytes = stackalloc byte[16];
        var n = WriteAddress(bytes);
        return new IPAddress(bytes[..n]);
    }

    /// <summary>Allocates an <see cref="IPEndPoint"/> for this endpoint.</summary>
    public IPEndPoint ToIPEndPoint() => new(ToIPAddress(), Port);

    /// <summary>The address family as a .NET enum.</summary>
    public AddressFamily AddressFamily => _family == 6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork;

    /// <inheritdoc/>
    public bool Equals(WireEndpoint other) => _family == other._family && _address == other._address && Port == other.Port;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is WireEndpoint other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(_family, _address, Port);

    /// <summary>Equality.</summary>
    public static bool operator ==(WireEndpoint left, WireEndpoint right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(WireEndpoint left, WireEndpoint right) => !left.Equals(right);

    /// <inheritdoc/>
    public override string ToString() => _family == 0 ? "(none)" : ToIPEndPoint().ToString();
}
