namespace Vip.Selection;

/// <summary>What a tier-2 daemon knows about an app server's availability.</summary>
public enum ServerState
{
    /// <summary>Registered (or reloaded from the store) but not heard from since: not a candidate.</summary>
    Unknown = 0,

    /// <summary>Heard from and accepting tasks.</summary>
    Up = 1,

    /// <summary>Heard from but finishing its work: takes no new tasks.</summary>
    Draining = 2,
}
