using System.Buffers.Binary;
using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;
using System.Text.Unicode;

namespace Vip.Selection;

/// <summary>A client record: the attributes of one client id (the store's client table).</summary>
/// <param name="Id">Client id, 1 to 255 bytes of UTF-8 (the TASK frame's <c>clientId</c>).</param>
/// <param name="Attributes">The client's attributes, e.g. <c>pool=gold</c>.</param>
public sealed record ClientRecord(string Id, IReadOnlyDictionary<string, string> Attributes);

/// <summary>A network rule: clients whose address is in <paramref name="Network"/> get these attributes.</summary>
/// <param name="Network">The address range, e.g. <c>10.1.0.0/16</c> or <c>2001:db8::/32</c>.</param>
/// <param name="Attributes">Attributes every client in the range gets, e.g. <c>region=eu</c>.</param>
public sealed record NetworkRule(IPNetwork Network, IReadOnlyDictionary<string, string> Attributes);

/// <summary>
/// An immutable snapshot of the client records and network rules. A client's attributes are its record's,
/// then the network rules' for its address (for each key the longest matching prefix wins), and for an
/// unknown client served with defaults, <see cref="SelectionOptions.DefaultClientAttributes"/> fill the rest.
/// </summary>
public sealed class ClientSet
{
    private readonly Dictionary<string, ClientProfile> _clients;
    private readonly Dictionary<string, ClientProfile>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly NetworkRuleTable _rules;

    // The clients seen last, by a hash of their UTF-8 id: a repeated client is found by one byte comparison,
    // without decoding its id or hashing it as text. Direct-mapped: a collision replaces the older one.
    private readonly ClientProfile?[] _recent = new ClientProfile?[RecentSize];
    private const int RecentSize = 256;

    internal ClientSet(SelectionConfig config, IEnumerable<ClientRecord> clients, IEnumerable<NetworkRule> rules, long version)
    {
        Config = config;
        Version = version;
        _clients = new Dictionary<string, ClientProfile>(StringComparer.Ordinal);
        foreach (ClientRecord c in clients)
        {
            _clients[c.Id] = new ClientProfile(config, c.Attributes, c);
        }

        _lookup = _clients.GetAlternateLookup<ReadOnlySpan<char>>();
        NetworkRules = [.. rules];
        _rules = new NetworkRuleTable(config, NetworkRules);
        Defaults = new ClientProfile(config, config.DefaultClientAttributes, null);
    }

    internal static ClientSet Empty(SelectionConfig config) => new(config, [], [], 0);

    /// <summary>Increases by one with every published snapshot.</summary>
    public long Version { get; }

    /// <summary>Number of client records.</summary>
    public int Count => _clients.Count;

    /// <summary>The network rules, as given.</summary>
    public IReadOnlyList<NetworkRule> NetworkRules { get; }

    /// <summary>Finds a client record.</summary>
    /// <param name="id">Client id.</param>
    /// <param name="client">The record, when found.</param>
    /// <returns>True when the client is known.</returns>
    public bool TryGetClient(string id, [NotNullWhen(true)] out ClientRecord? client)
    {
        client = _clients.TryGetValue(id, out ClientProfile? p) ? p.Record : null;
        return client is not null;
    }

    /// <summary>The attributes a client gets: its record (or the defaults when unknown) merged with the network rules for its address.</summary>
    /// <param name="clientId">Client id.</param>
    /// <param name="address">The client's address, or null when unknown.</param>
    /// <returns>The effective attributes.</returns>
    public IReadOnlyDictionary<string, string> ResolveAttributes(string clientId, IPAddress? address)
    {
        ArgumentNullException.ThrowIfNull(clientId);
        Span<byte> buffer = stackalloc byte[16];
        ReadOnlySpan<byte> bytes = address is not null && address.TryWriteBytes(buffer, out int written) ? buffer[..written] : default;
        ClientProfile? record = _clients.GetValueOrDefault(clientId);
        return Merge(record, MatchRule(bytes));
    }

    internal IReadOnlyDictionary<string, string> Merge(ClientProfile? record, ClientProfile? rule)
    {
        var merged = new Dictionary<string, string>(StringComparer.Ordinal);
        if (record is null)
        {
            foreach ((string k, string v) in Defaults.Attributes)
            {
                merged[k] = v;
            }
        }

        if (rule is not null)
        {
            foreach ((string k, string v) in rule.Attributes)
            {
                merged[k] = v;
            }
        }

        if (record is not null)
        {
            foreach ((string k, string v) in record.Attributes)
            {
                merged[k] = v;
            }
        }

        return merged;
    }

    internal SelectionConfig Config { get; }

    internal ClientProfile Defaults { get; }

    /// <summary>Looks a client up by its UTF-8 id without allocating. False when the bytes are not valid UTF-8.</summary>
    internal bool TryFind(ReadOnlySpan<byte> utf8Id, out ClientProfile? profile)
    {
        profile = null;
        if (utf8Id.IsEmpty || utf8Id.Length > 255)
        {
            // Ids are str8 on the wire; a longer one cannot be in the store.
            return true;
        }

        ref ClientProfile? recent = ref _recent[Utf8Key.Index(utf8Id, RecentSize - 1)];
        if (Volatile.Read(ref recent) is { } hit && hit.IdUtf8.AsSpan().SequenceEqual(utf8Id))
        {
            profile = hit;
            return true;
        }

        Span<char> chars = stackalloc char[256];
        if (Utf8.ToUtf16(utf8Id, chars, out _, out int written, replaceInvalidSequences: false) != System.Buffers.OperationStatus.Done)
        {
            return false;
        }

        if (_lookup.TryGetValue(chars[..written], out profile))
        {
            Volatile.Write(ref recent, profile);
        }

        return true;
    }

    internal ClientProfile? MatchRule(ReadOnlySpan<byte> address) => _rules.Match(address);
}

/// <summary>The attributes of a client record, a network rule (merged with its shorter covering rules) or the defaults, pre-sorted by binding and preference key.</summary>
internal sealed class ClientProfile
{
    public ClientProfile(SelectionConfig config, IReadOnlyDictionary<string, string> attributes, ClientRecord? record)
    {
        Attributes = attributes.ToFrozenDictionary(StringComparer.Ordinal);
        Record = record;
        IdUtf8 = record is null ? [] : System.Text.Encoding.UTF8.GetBytes(record.Id);
        Bindings = [.. config.BindingKeys.Select(k => Attributes.GetValueOrDefault(k))];
        Preferences = [.. config.Preferences.Select(p => Attributes.GetValueOrDefault(p.Key))];
    }

    public FrozenDictionary<string, string> Attributes { get; }

    public ClientRecord? Record { get; }

    private PreferenceServers? _preferenceServers;

    /// <summary>
    /// The servers of <paramref name="set"/> with this profile's value of each client-preference key (null where
    /// the profile lacks the key or no server has the value). Looked up once per snapshot, then reused.
    /// </summary>
    public Posting?[] PreferencePostings(ServerSet set)
    {
        PreferenceServers? cached = Volatile.Read(ref _preferenceServers);
        if (cached?.Set != set)
        {
            var postings = new Posting?[Preferences.Length];
            for (int j = 0; j < postings.Length; j++)
            {
                if (Preferences[j] is { } value && set.PreferenceKeys[j] is { } ki)
                {
                    postings[j] = ki.Values.GetValueOrDefault(value);
                }
            }

            cached = new PreferenceServers(set, postings);
            Volatile.Write(ref _preferenceServers, cached);
        }

        return cached.Postings;
    }

    private sealed record PreferenceServers(ServerSet Set, Posting?[] Postings);

    /// <summary>The record's id as UTF-8 (empty for a network rule or the defaults).</summary>
    public byte[] IdUtf8 { get; }

    /// <summary>Value per configured binding key (null when the profile lacks it).</summary>
    public string?[] Bindings { get; }

    /// <summary>Value per configured client-preference key (null when the profile lacks it).</summary>
    public string?[] Preferences { get; }
}

/// <summary>Longest-prefix match of an address over the network rules: one hash probe per distinct prefix length.</summary>
internal sealed class NetworkRuleTable
{
    private readonly Dictionary<uint, ClientProfile>?[] _v4 = new Dictionary<uint, ClientProfile>?[33];
    private readonly Dictionary<UInt128, ClientProfile>?[] _v6 = new Dictionary<UInt128, ClientProfile>?[129];
    private int[] _v4Lengths = [];
    private int[] _v6Lengths = [];

    public NetworkRuleTable(SelectionConfig config, IReadOnlyList<NetworkRule> rules)
    {
        // Shorter prefixes first, so each rule can inherit the attributes of the longest rule covering it.
        foreach (var (address, length, attributes) in rules.Select(Normalize).OrderBy(r => r.Length))
        {
            ClientProfile? parent = Match(address);
            Dictionary<string, string> merged = parent is null ? new(StringComparer.Ordinal) : new(parent.Attributes, StringComparer.Ordinal);
            foreach ((string k, string v) in attributes)
            {
                merged[k] = v;
            }

            var profile = new ClientProfile(config, merged, null);
            if (address.Length == 4)
            {
                var table = _v4[length] ??= [];
                if (!table.TryAdd(Mask4(BinaryPrimitives.ReadUInt32BigEndian(address), length), profile))
                {
                    throw new ArgumentException($"network rule {new IPAddress(address)}/{length} is listed twice", nameof(rules));
                }

                _v4Lengths = [.. Enumerable.Range(0, 33).Where(l => _v4[l] is not null).Reverse()];
            }
            else
            {
                var table = _v6[length] ??= [];
                if (!table.TryAdd(Mask6(BinaryPrimitives.ReadUInt128BigEndian(address), length), profile))
                {
                    throw new ArgumentException($"network rule {new IPAddress(address)}/{length} is listed twice", nameof(rules));
                }

                _v6Lengths = [.. Enumerable.Range(0, 129).Where(l => _v6[l] is not null).Reverse()];
            }
        }
    }

    private static (byte[] Address, int Length, IReadOnlyDictionary<string, string> Attributes) Normalize(NetworkRule rule)
    {
        IPAddress a = rule.Network.BaseAddress;
        int length = rule.Network.PrefixLength;
        if (a.AddressFamily == AddressFamily.InterNetworkV6 && a.IsIPv4MappedToIPv6 && length >= 96)
        {
            // ::ffff:10.0.0.0/104 is 10.0.0.0/8: clients arrive as plain IPv4 after normalisation.
            return (a.MapToIPv4().GetAddressBytes(), length - 96, rule.Attributes);
        }

        return (a.GetAddressBytes(), length, rule.Attributes);
    }

    public ClientProfile? Match(ReadOnlySpan<byte> address)
    {
        if (address.Length == 16 && IsV4Mapped(address))
        {
            address = address[12..];
        }

        if (address.Length == 4)
        {
            uint a = BinaryPrimitives.ReadUInt32BigEndian(address);
            foreach (int length in _v4Lengths)
            {
                if (_v4[length]!.TryGetValue(Mask4(a, length), out ClientProfile? p))
                {
                    return p;
                }
            }
        }
        else if (address.Length == 16)
        {
            UInt128 a = BinaryPrimitives.ReadUInt128BigEndian(address);
            foreach (int length in _v6Lengths)
            {
                if (_v6[length]!.TryGetValue(Mask6(a, length), out ClientProfile? p))
                {
                    return p;
                }
            }
        }

        return null;
    }

    private static bool IsV4Mapped(ReadOnlySpan<byte> a) =>
        a[..10].IndexOfAnyExcept((byte)0) < 0 && a[10] == 0xFF && a[11] == 0xFF;

    private static uint Mask4(uint a, int length) => length == 0 ? 0 : a & (uint.MaxValue << (32 - length));

    private static UInt128 Mask6(UInt128 a, int length) => length == 0 ? UInt128.Zero : a & (UInt128.MaxValue << (128 - length));
}
