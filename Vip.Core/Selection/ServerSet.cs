using System.Numerics;
using System.Collections;

namespace Vip.Selection;

/// <summary>
/// An immutable snapshot of the app servers one tier-2 daemon knows, with an index by attribute
/// (key → servers, key=value → servers, numeric values sorted) so filter terms become bitmap operations
/// instead of scans. Writers build a new snapshot; readers use the current one without locks. Live figures
/// (state, load, issued tickets) are shared with later snapshots and change without a rebuild.
/// </summary>
public sealed class ServerSet : IReadOnlyList<ServerEntry>
{
    private readonly ServerEntry[] _entries;
    private readonly Dictionary<string, int> _byId;
    private readonly (byte[] Utf8, ulong[] Mask)?[] _kindsByUtf8;

    private ServerSet(SelectionConfig config, ServerEntry[] entries, long version, ulong[][] ranks)
    {
        Config = config;
        _entries = entries;
        Version = version;
        Ranks = ranks;
        int n = entries.Length;
        WordCount = Bits.Words(n);
        All = Bits.All(n);
        Live = new ServerLive[n];
        IdHashes = new ulong[n];
        bool sameSlots = true;
        for (int i = 0; i < n; i++)
        {
            sameSlots &= entries[i].Live.Slot == i;
        }

        SlotMap = sameSlots ? null : [.. entries.Select(e => e.Live.Slot)];
        if (SlotMap is { } map)
        {
            IndexBySlot = new int[map.Max() + 1];
            Array.Fill(IndexBySlot, -1);
            for (int i = 0; i < n; i++)
            {
                IndexBySlot[map[i]] = i;
            }
        }
        _byId = new Dictionary<string, int>(n, StringComparer.Ordinal);
        var keys = new Dictionary<string, (List<int> Exists, Dictionary<string, List<int>> Values)>(StringComparer.Ordinal);
        var kinds = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var hasKinds = new List<int>();
        for (int i = 0; i < n; i++)
        {
            ServerEntry e = entries[i];
            Live[i] = e.Live;
            IdHashes[i] = e.Live.IdHash;
            _byId.Add(e.Id, i);
            foreach ((string k, string v) in e.Attributes)
            {
                if (!keys.TryGetValue(k, out var ki))
                {
                    ki = ([], new Dictionary<string, List<int>>(StringComparer.Ordinal));
                    keys.Add(k, ki);
                }

                ki.Exists.Add(i);
                if (!ki.Values.TryGetValue(v, out List<int>? list))
                {
                    ki.Values.Add(v, list = []);
                }

                list.Add(i);
            }

            if (config.KindsOf(e.Attributes) is { } listed)
            {
                hasKinds.Add(i);
                foreach (string kind in listed.Distinct(StringComparer.Ordinal))
                {
                    if (!kinds.TryGetValue(kind, out List<int>? list))
                    {
                        kinds.Add(kind, list = []);
                    }

                    list.Add(i);
                }
            }
        }

        Keys = new Dictionary<string, KeyIndex>(keys.Count, StringComparer.Ordinal);
        foreach ((string k, var ki) in keys)
        {
            var values = new Dictionary<string, Posting>(ki.Values.Count, StringComparer.Ordinal);
            var numeric = new List<(double, Posting)>();
            foreach ((string v, List<int> members) in ki.Values)
            {
                var p = new Posting([.. members], n);
                values.Add(v, p);
                if (RequirementNumber.TryParse(v, out double d))
                {
                    numeric.Add((d, p));
                }
            }

            numeric.Sort((a, b) => a.Item1.CompareTo(b.Item1));
            Keys.Add(k, new KeyIndex(new Posting([.. ki.Exists], n), values, [.. numeric]));
        }

        // Binding keys: a dense mask per value, plus the servers without the key.
        Bindings = new BindingIndex[config.BindingKeys.Length];
        for (int j = 0; j < Bindings.Length; j++)
        {
            string key = config.BindingKeys[j];
            var byValue = new Dictionary<string, ulong[]>(StringComparer.Ordinal);
            ulong[] absent = (ulong[])All.Clone();
            if (Keys.TryGetValue(key, out KeyIndex? ki))
            {
                foreach ((string v, Posting p) in ki.Values)
                {
                    byValue.Add(v, p.ToBits(n));
                }

                Bits.AndNot(absent, ki.Exists.ToBits(n));
            }

            Bindings[j] = new BindingIndex(byValue, absent);
        }

        // Task kinds: servers listing the kind, plus every server without a kinds attribute.
        KindsInUse = hasKinds.Count > 0;
        ulong[] noKinds = (ulong[])All.Clone();
        Bits.AndNot(noKinds, new Posting([.. hasKinds], n).ToBits(n));
        NoKindMask = noKinds;
        KindMasks = new Dictionary<string, ulong[]>(kinds.Count, StringComparer.Ordinal);
        foreach ((string kind, List<int> members) in kinds)
        {
            ulong[] mask = new Posting([.. members], n).ToBits(n);
            Bits.Or(mask, noKinds);
            KindMasks.Add(kind, mask);
        }

        KindLookup = KindMasks.GetAlternateLookup<ReadOnlySpan<char>>();

        // The kinds by a hash of their UTF-8 bytes, built once: a decision finds its kind by one byte comparison
        // (a kind that collided with another is found through KindLookup instead).
        _kindsByUtf8 = new (byte[], ulong[])?[Math.Max(16, (int)BitOperations.RoundUpToPowerOf2((uint)KindMasks.Count * 4))];
        foreach ((string kind, ulong[] mask) in KindMasks)
        {
            byte[] utf8 = System.Text.Encoding.UTF8.GetBytes(kind);
            ref (byte[], ulong[])? slot = ref _kindsByUtf8[Utf8Key.Index(utf8, _kindsByUtf8.Length - 1)];
            slot ??= (utf8, mask);
        }

        PreferenceKeys = new KeyIndex?[config.Preferences.Length];
        for (int j = 0; j < PreferenceKeys.Length; j++)
        {
            PreferenceKeys[j] = Keys.GetValueOrDefault(config.Preferences[j].Key);
        }
    }

    /// <summary>
    /// Builds a snapshot of the given servers, indexed in the order of their counter slots (registration order,
    /// freed slots reused lowest first), so a walk over the index in order walks the counters in memory order.
    /// </summary>
    internal static ServerSet Build(SelectionConfig config, IEnumerable<ServerEntry> entries, long version, ulong[][] ranks)
    {
        ServerEntry[] sorted = [.. entries];
        Array.Sort(sorted, static (a, b) => a.Live.Slot.CompareTo(b.Live.Slot));
        return new ServerSet(config, sorted, version, ranks);
    }

    internal static ServerSet Empty(SelectionConfig config) => new(config, [], 0, []);

    /// <summary>Increases by one with every published snapshot.</summary>
    public long Version { get; }

    /// <summary>Number of servers.</summary>
    public int Count => _entries.Length;

    /// <summary>The server at an index (indices follow registration order, with freed places reused, and are valid for this snapshot only).</summary>
    /// <param name="index">0 to <see cref="Count"/> - 1.</param>
    public ServerEntry this[int index] => _entries[index];

    /// <summary>Finds a server by id.</summary>
    /// <param name="id">The server id.</param>
    /// <param name="server">The server, when found.</param>
    /// <returns>True when the snapshot holds the server.</returns>
    public bool TryGetServer(string id, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ServerEntry? server)
    {
        if (_byId.TryGetValue(id, out int i))
        {
            server = _entries[i];
            return true;
        }

        server = null;
        return false;
    }

    /// <inheritdoc />
    public IEnumerator<ServerEntry> GetEnumerator() => ((IEnumerable<ServerEntry>)_entries).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    internal SelectionConfig Config { get; }

    internal int WordCount { get; }

    internal ulong[] All { get; }

    internal ServerLive[] Live { get; }

    /// <summary>The engine's rank-word chunks as of this snapshot (they cover every slot of its servers).</summary>
    internal ulong[][] Ranks { get; }

    /// <summary>Each server's stable id hash, by index (rendezvous hashing reads them in the candidate walk).</summary>
    internal ulong[] IdHashes { get; }

    /// <summary>The counter slot of each index; null when every server's slot is its index (no freed slot in between).</summary>
    internal int[]? SlotMap { get; }

    /// <summary>The index of each counter slot (-1: not in this snapshot); null when every index is its slot.</summary>
    internal int[]? IndexBySlot { get; }

    /// <summary>The index of the server at a counter slot, or -1 when this snapshot does not hold it.</summary>
    internal int IndexOfSlot(int slot) =>
        IndexBySlot is { } map ? ((uint)slot < (uint)map.Length ? map[slot] : -1) : ((uint)slot < (uint)Count ? slot : -1);

    /// <summary>The rank word of the server at an index.</summary>
    internal ulong RankOf(int index) => Volatile.Read(ref new Policies.MappedSlots(Ranks, SlotMap).Of(index));

    internal Dictionary<string, KeyIndex> Keys { get; }

    internal BindingIndex[] Bindings { get; }

    internal bool KindsInUse { get; }

    internal ulong[] NoKindMask { get; }

    internal Dictionary<string, ulong[]> KindMasks { get; }

    internal Dictionary<string, ulong[]>.AlternateLookup<ReadOnlySpan<char>> KindLookup { get; }

    /// <summary>The mask of a kind given as UTF-8, when the byte-keyed table has it; otherwise decode and use <see cref="KindLookup"/>.</summary>
    internal bool TryGetKindMask(ReadOnlySpan<byte> utf8, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ulong[]? mask)
    {
        if (_kindsByUtf8[Utf8Key.Index(utf8, _kindsByUtf8.Length - 1)] is { } e && e.Utf8.AsSpan().SequenceEqual(utf8))
        {
            mask = e.Mask;
            return true;
        }

        mask = null;
        return false;
    }

    internal KeyIndex?[] PreferenceKeys { get; }

    internal int IndexOf(string id) => _byId.TryGetValue(id, out int i) ? i : -1;
}

/// <summary>The servers of each value of one binding key, and the servers without it (dense masks).</summary>
internal sealed class BindingIndex
{
    public BindingIndex(Dictionary<string, ulong[]> byValue, ulong[] absent)
    {
        ByValue = byValue;
        Lookup = byValue.GetAlternateLookup<ReadOnlySpan<char>>();
        Absent = absent;
    }

    public Dictionary<string, ulong[]> ByValue { get; }

    public Dictionary<string, ulong[]>.AlternateLookup<ReadOnlySpan<char>> Lookup { get; }

    public ulong[] Absent { get; }
}
