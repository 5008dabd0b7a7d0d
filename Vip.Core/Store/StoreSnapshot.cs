using System.Collections.Immutable;
using System.Net;

namespace Vip.Store;

/// <summary>
/// An immutable view of everything in the store, swapped atomically on every change: requests read it and never
/// touch LiteDB. Holding on to a snapshot is safe; it does not change (except the <see cref="ServerLiveness"/>
/// objects it refers to, which heartbeats update in place).
/// </summary>
public sealed class StoreSnapshot
{
    internal static readonly StoreSnapshot Empty = new(
        0,
        ImmutableDictionary.Create<string, ServerEntry>(StringComparer.Ordinal),
        ImmutableDictionary.Create<string, ClientRecord>(StringComparer.Ordinal),
        ImmutableDictionary<IPNetwork, NetworkRule>.Empty);

    internal StoreSnapshot(
        long version,
        ImmutableDictionary<string, ServerEntry> servers,
        ImmutableDictionary<string, ClientRecord> clients,
        ImmutableDictionary<IPNetwork, NetworkRule> networks)
    {
        Version = version;
        Servers = servers;
        Clients = clients;
        Networks = networks;
    }

    /// <summary>Increases by one with every change.</summary>
    public long Version { get; }

    /// <summary>App servers by id.</summary>
    public ImmutableDictionary<string, ServerEntry> Servers { get; }

    /// <summary>Clients by id.</summary>
    public ImmutableDictionary<string, ClientRecord> Clients { get; }

    /// <summary>Network rules by address block.</summary>
    public ImmutableDictionary<IPNetwork, NetworkRule> Networks { get; }

    /// <summary>
    /// The network rules whose block contains <paramref name="address"/>, widest block first, so that applying them
    /// in order lets the most specific rule win. IPv4-mapped IPv6 addresses match IPv4 rules.
    /// </summary>
    public IReadOnlyList<NetworkRule> NetworkRulesFor(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (Networks.IsEmpty)
        {
            return [];
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        var matches = new List<NetworkRule>();
        foreach (var (network, rule) in Networks)
        {
            if (network.Contains(address))
            {
                matches.Add(rule);
            }
        }

        matches.Sort(static (a, b) => a.Network.PrefixLength.CompareTo(b.Network.PrefixLength));
        return matches;
    }

    internal StoreSnapshot With(
        ImmutableDictionary<string, ServerEntry>? servers = null,
        ImmutableDictionary<string, ClientRecord>? clients = null,
        ImmutableDictionary<IPNetwork, NetworkRule>? networks = null) =>
        new(Version + 1, servers ?? Servers, clients ?? Clients, networks ?? Networks);
}

/// <summary>What changed in the store.</summary>
public enum StoreChangeKind
{
    /// <summary>An app server was registered or its record changed (state, drain, attributes, address).</summary>
    ServerSet,

    /// <summary>An app server deregistered.</summary>
    ServerRemoved,

    /// <summary>A client's attributes were set.</summary>
    ClientSet,

    /// <summary>A client was removed.</summary>
    ClientRemoved,

    /// <summary>A network rule was set.</summary>
    NetworkSet,

    /// <summary>A network rule was removed.</summary>
    NetworkRemoved,
}

/// <summary>Raised by <see cref="VipStore.Changed"/> after the snapshot was swapped.</summary>
public sealed class StoreChangedEventArgs : EventArgs
{
    internal StoreChangedEventArgs(StoreChangeKind kind, string key, StoreSnapshot snapshot)
    {
        Kind = kind;
        Key = key;
        Snapshot = snapshot;
    }

    /// <summary>What changed.</summary>
    public StoreChangeKind Kind { get; }

    /// <summary>The server id, client id, or network (CIDR text) that changed.</summary>
    public string Key { get; }

    /// <summary>The snapshot that includes this change.</summary>
    public StoreSnapshot Snapshot { get; }
}
