using System.Net;

namespace Vip.Protocol;

/// <summary>The command of a PROXY protocol v2 header (docs/protocol.md, "PROXY protocol v2").</summary>
public enum ProxyCommand : byte
{
    /// <summary>The connection was made by the proxy itself (a health check): use the real peer address.</summary>
    Local = 0x0,

    /// <summary>The connection is relayed for the client named in the header.</summary>
    Proxy = 0x1,
}

/// <summary>The transport named in a PROXY protocol v2 header.</summary>
public enum ProxyTransport : byte
{
    /// <summary>UNSPEC: no addresses (LOCAL headers).</summary>
    Unspecified = 0x0,

    /// <summary>TCP (STREAM).</summary>
    Stream = 0x1,

    /// <summary>UDP (DGRAM).</summary>
    Datagram = 0x2,
}

/// <summary>
/// A parsed or to-be-written PROXY protocol v2 header, held without allocating: the addresses are
/// <see cref="WireEndpoint"/> values (16 bytes of address each), turned into <see cref="IPEndPoint"/> only on request.
/// </summary>
public readonly struct ProxyHeader : IEquatable<ProxyHeader>
{
    private ProxyHeader(ProxyCommand command, ProxyTransport transport, WireEndpoint source, WireEndpoint destination)
    {
        Command = command;
        Transport = transport;
        Source = source;
        Destination = destination;
    }

    /// <summary>LOCAL or PROXY.</summary>
    public ProxyCommand Command { get; }

    /// <summary>Stream (TCP), datagram (UDP), or unspecified for LOCAL.</summary>
    public ProxyTransport Transport { get; }

    /// <summary>The original client address and port (default for LOCAL).</summary>
    public WireEndpoint Source { get; }

    /// <summary>The address and port the client connected to (default for LOCAL).</summary>
    public WireEndpoint Destination { get; }

    /// <summary>True for a LOCAL header: the receiver should use the connection's own peer address.</summary>
    public bool IsLocal => Command == ProxyCommand.Local;

    /// <summary>A LOCAL header (command LOCAL, family UNSPEC, no addresses): 16 bytes on the wire.</summary>
    public static ProxyHeader Local => default;

    /// <summary>
    /// A PROXY header for a client at <paramref name="source"/> that connected to <paramref name="destination"/>.
    /// IPv4-mapped IPv6 addresses count as IPv4; when one side is IPv4 and the other IPv6, both are written as IPv6.
    /// </summary>
    public static ProxyHeader Create(ProxyTransport transport, WireEndpoint source, WireEndpoint destination)
    {
        if (transport == ProxyTransport.Unspecified || !Enum.IsDefined(transport))
        {
            throw new ArgumentOutOfRangeException(nameof(transport), transport, "a PROXY header names TCP or UDP");
        }

        if (source.Family == 0 || destination.Family == 0)
        {
            throw new ArgumentException("a PROXY header needs both addresses");
        }

        return new ProxyHeader(ProxyCommand.Proxy, transport, source, destination);
    }

    /// <summary>A PROXY header built from .NET endpoints (no allocation).</summary>
    public static ProxyHeader Create(ProxyTransport transport, IPEndPoint source, IPEndPoint destination)
        => Create(transport, WireEndpoint.From(source), WireEndpoint.From(destination));

    internal static ProxyHeader FromParsed(ProxyCommand command, ProxyTransport transport, WireEndpoint source, WireEndpoint destination)
        => new(command, transport, source, destination);

    /// <summary>True when the header is written with the IPv6 address family (either address is IPv6).</summary>
    public bool UsesIPv6 => Source.Family == 6 || Destination.Family == 6;

    /// <summary>Bytes this header takes on the wire: 16 for LOCAL, 28 for IPv4, 52 for IPv6.</summary>
    public int EncodedLength => IsLocal ? ProxyProtocol.FixedHeaderLength
        : ProxyProtocol.FixedHeaderLength + (UsesIPv6 ? ProxyProtocol.IPv6AddressBlockLength : ProxyProtocol.IPv4AddressBlockLength);

    /// <summary>The client's endpoint as an <see cref="IPEndPoint"/> (allocates), or null for LOCAL.</summary>
    public IPEndPoint? GetSourceEndPoint() => IsLocal ? null : Source.ToIPEndPoint();

    /// <summary>The destination endpoint as an <see cref="IPEndPoint"/> (allocates), or null for LOCAL.</summary>
    public IPEndPoint? GetDestinationEndPoint() => IsLocal ? null : Destination.ToIPEndPoint();

    /// <inheritdoc/>
    public bool Equals(ProxyHeader other) => Command == other.Command && Transport == other.Transport
        && Source == other.Source && Destination == other.Destination;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is ProxyHeader other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Command, Transport, Source, Destination);

    /// <summary>Equality.</summary>
    public static bool operator ==(ProxyHeader left, ProxyHeader right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(ProxyHeader left, ProxyHeader right) => !left.Equals(right);

    /// <inheritdoc/>
    public override string ToString() => IsLocal ? "LOCAL" : $"PROXY {Transport} {Source} -> {Destination}";
}

/// <summary>Constants of the PROXY protocol v2 binary format (HAProxy's proxy-protocol.txt, section 2.2).</summary>
public static class ProxyProtocol
{
    /// <summary>The fixed part: 12-byte signature, version/command, family/transport, 16-bit length.</summary>
    public const int FixedHeaderLength = 16;

    /// <summary>Address block for TCP/UDP over IPv4: two 4-byte addresses and two ports.</summary>
    public const int IPv4AddressBlockLength = 12;

    /// <summary>Address block for TCP/UDP over IPv6: two 16-byte addresses and two ports.</summary>
    public const int IPv6AddressBlockLength = 36;

    /// <summary>The largest header Vip itself writes (IPv6): 52 bytes.</summary>
    public const int MaxWrittenLength = FixedHeaderLength + IPv6AddressBlockLength;

    /// <summary>Default cap on the header's length field (address block + TLVs): 512 bytes.</summary>
    public const int DefaultMaxLength = 512;

    /// <summary>The 12-byte signature that opens every v2 header: <c>0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A</c>.</summary>
    public static ReadOnlySpan<byte> Signature => [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    internal const byte Version2 = 0x20;
    internal const byte FamilyUnspec = 0x00;
    internal const byte FamilyInet = 0x10;
    internal const byte FamilyInet6 = 0x20;
}
