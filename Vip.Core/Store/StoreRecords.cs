using System.Collections.Frozen;
using System.Net;

namespace Vip.Store;

/// <summary>What an app server last said about itself in a HEARTBEAT; the numeric values are the wire's.</summary>
public enum ServerState : byte
{
    /// <summary>Taking tasks.</summary>
    Up = 0,

    /// <summary>Finishing its tasks, taking no new ones.</summary>
    Draining = 1,
}

/// <summary>An app server as the store keeps it on disk. Immutable; a change makes a new record.</summary>
/// <param name="Id">The server id (1..255 UTF-8 bytes).</param>
/// <param name="Service">The address and port clients connect to.</param>
/// <param name="Attributes">Static attributes from REGISTER (<c>region=eu</c>, <c>pool=gold</c>, <c>cores=16</c>).</param>
/// <param name="Capacity">How many tasks it takes at once.</param>
/// <param name="State">The state it last reported (persisted when it changes).</param>
/// <param name="AdminDrained">Drained by an operator (<c>vipd ctl servers drain</c>); sticks until undone, whatever the server reports.</param>
/// <param name="RegisteredAt">When it last registered.</param>
/// <param name="LastSeen">When it was last heard from, as of the last persisted change (heartbeats alone are not persisted: see <see cref="ServerLiveness"/>).</param>
public sealed record AppServerRecord(
    string Id,
    IPEndPoint Service,
    IReadOnlyDictionary<string, string> Attributes,
    int Capacity,
    ServerState State,
    bool AdminDrained,
    DateTimeOffset RegisteredAt,
    DateTimeOffset LastSeen);

/// <summary>A REGISTER from an app server, as given to <see cref="VipStore.RegisterServerAsync"/>.</summary>
/// <param name="Id">The server id (1..255 UTF-8 bytes).</param>
/// <param name="Service">The address and port clients connect to.</param>
/// <param name="Attributes">Static attributes (at most <see cref="StoreOptions.MaxAttributes"/>).</param>
/// <param name="Capacity">How many tasks it takes at once (≥ 0).</param>
public sealed record AppServerRegistration(string Id, IPEndPoint Service, IReadOnlyDictionary<string, string> Attributes, int Capacity);

/// <summary>A client's attributes (<c>vipd ctl clients set ID k=v ...</c>).</summary>
/// <param name="Id">The client id (1..255 UTF-8 bytes), as sent in TASK.</param>
/// <param name="Attributes">Its attributes.</param>
/// <param name="UpdatedAt">When they were last set.</param>
public sealed record ClientRecord(string Id, IReadOnlyDictionary<string, string> Attributes, DateTimeOffset UpdatedAt);

/// <summary>Attributes every client whose address is inside <paramref name="Network"/> has (<c>10.1.0.0/16 → region=eu</c>).</summary>
/// <param name="Network">The address block.</param>
/// <param name="Attributes">The attributes it gives.</param>
/// <param name="UpdatedAt">When they were last set.</param>
public sealed record NetworkRule(IPNetwork Network, IReadOnlyDictionary<string, string> Attributes, DateTimeOffset UpdatedAt);

/// <summary>
/// What this process has heard from an app server since it started: kept in memory only. After a restart every
/// server is "not yet heard from" (<see cref="HeardFrom"/> false) until its next REGISTER or HEARTBEAT.
/// Fields are updated in place by heartbeats, without a new snapshot; each read is atomic, a group of reads is not.
/// </summary>
public sealed class ServerLiveness
{
    private long _lastHeardUnixMs;
    private int _loadPermille;
    private int _activeTasks;

    /// <summary>Whether the server was heard from since this process started.</summary>
    public bool HeardFrom => Volatile.Read(ref _lastHeardUnixMs) != 0;

    /// <summary>When it was last heard from (Unix ms), 0 if never since start.</summary>
    public long LastHeardUnixMs => Volatile.Read(ref _lastHeardUnixMs);

    /// <summary>Load from its last heartbeat, in thousandths of its capacity.</summary>
    public int LoadPermille => Volatile.Read(ref _loadPermille);

    /// <summary>Active tasks from its last heartbeat.</summary>
    public int ActiveTasks => Volatile.Read(ref _activeTasks);

    internal void Heard(long nowUnixMs, int loadPermille, int activeTasks)
    {
        Volatile.Write(ref _loadPermille, loadPermille);
        Volatile.Write(ref _activeTasks, activeTasks);
        Volatile.Write(ref _lastHeardUnixMs, Math.Max(1, nowUnixMs));
    }
}

/// <summary>An app server in a <see cref="StoreSnapshot"/>: its stored record and its in-memory liveness.</summary>
/// <param name="Record">The persisted record.</param>
/// <param name="Liveness">Heartbeat data since start; the same object across record changes.</param>
public sealed record ServerEntry(AppServerRecord Record, ServerLiveness Liveness);

internal static class Attributes
{
    public static readonly IReadOnlyDictionary<string, string> Empty = FrozenDictionary<string, string>.Empty;

    /// <summary>
    /// A private read-only copy, so callers cannot change a stored record afterwards. A plain dictionary behind a
    /// read-only wrapper, not a FrozenDictionary: building those costs more than a store open can spend per record.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Freeze(IEnumerable<KeyValuePair<string, string>> source) =>
        new Dictionary<string, string>(source, StringComparer.Ordinal).AsReadOnly();
}
