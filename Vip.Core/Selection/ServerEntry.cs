using System.Collections.Frozen;
using System.Net;

namespace Vip.Selection;

/// <summary>
/// One app server as the selector sees it: the registration (immutable) plus live figures from its heartbeats
/// and from the tickets this daemon issued (read at the moment a property is read).
/// </summary>
public sealed class ServerEntry
{
    internal ServerEntry(ServerRegistration registration, int weight, ServerLive live)
    {
        Id = registration.Id;
        Service = registration.Service;
        Capacity = registration.Capacity;
        Attributes = registration.Attributes.ToFrozenDictionary(StringComparer.Ordinal);
        Weight = weight;
        Live = live;
        Registration = registration;
    }

    /// <summary>Server id.</summary>
    public string Id { get; }

    /// <summary>The address clients connect to (goes into REDIRECT).</summary>
    public IPEndPoint Service { get; }

    /// <summary>Most tasks at once: active plus tickets issued since the last heartbeat.</summary>
    public int Capacity { get; }

    /// <summary>Static attributes.</summary>
    public IReadOnlyDictionary<string, string> Attributes { get; }

    /// <summary>Weighted round robin weight: the weight attribute when it is a positive number, else the capacity.</summary>
    public int Weight { get; }

    /// <summary>Up, draining, or not heard from yet.</summary>
    public ServerState State => (ServerState)Live.State;

    /// <summary>The load figure of the last heartbeat (0 to 1 000).</summary>
    public int LoadPermille => Live.LoadPermille;

    /// <summary>Active tasks reported by the last heartbeat.</summary>
    public int ActiveTasks => Live.Active;

    /// <summary>Tickets this daemon issued for the server since its last heartbeat.</summary>
    public int IssuedSinceHeartbeat => Live.Issued;

    /// <summary>When the server was last heard from (heartbeat or registration); null when never.</summary>
    public DateTimeOffset? LastHeard
    {
        get
        {
            long ticks = Volatile.Read(ref Live.LastHeardUtcTicks);
            return ticks == 0 ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    /// <summary>(active + issued) ÷ capacity, the load that least-load ranking uses.</summary>
    public double Load => (ActiveTasks + IssuedSinceHeartbeat) / (double)Capacity;

    internal ServerLive Live { get; }

    internal ServerRegistration Registration { get; }

    /// <summary>The id.</summary>
    /// <returns>The id.</returns>
    public override string ToString() => Id;
}
