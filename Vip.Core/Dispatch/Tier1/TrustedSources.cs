using System.Net;
using System.Net.Sockets;
using Vip.Protocol;

namespace Vip.Dispatch.Tier1;

/// <summary>The configured trusted proxy networks, matched against a <see cref="WireEndpoint"/> without allocating.</summary>
internal sealed class TrustedSources
{
    private readonly (byte Family, UInt128 Prefix, UInt128 Mask)[] _networks;

    public TrustedSources(IEnumerable<IPNetwork> networks)
    {
        _networks = networks.Select(n =>
        {
            var v6 = n.BaseAddress.AddressFamily == AddressFamily.InterNetworkV6 && !n.BaseAddress.IsIPv4MappedToIPv6;
            var ep = WireEndpoint.From(n.BaseAddress, 0);
            var bits = v6 ? 128 : 32;
            var prefixLength = v6 ? n.PrefixLength : Math.Min(n.PrefixLength, 32);
            var mask = prefixLength == 0 ? UInt128.Zero : (UInt128.MaxValue << (bits - prefixLength)) & (bits == 32 ? (UInt128)uint.MaxValue : UInt128.MaxValue);
            return ((byte)(v6 ? 6 : 4), Value(ep) & mask, mask);
        }).ToArray();
    }

    public bool IsEmpty => _networks.Length == 0;

    public bool Contains(in WireEndpoint endpoint)
    {
        if (_networks.Length == 0)
        {
            return false;
        }

        var value = Value(endpoint);
        foreach (var (family, prefix, mask) in _networks)
        {
            if (family == endpoint.Family && (value & mask) == prefix)
            {
                return true;
            }
        }

        return false;
    }

    private static UInt128 Value(in WireEndpoint ep)
    {
        Span<byte> bytes = stackalloc byte[16];
        var n = ep.WriteAddress(bytes);
        return n == 4
            ? System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes)
            : System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(bytes);
    }
}
