namespace Vip.Dispatch.Tier2;

/// <summary>
/// The ADMIN commands a tier-2 daemon answers on its control port (docs/architecture.md, "Tier-2 daemon").
/// Every answer is an ADMIN-RESULT whose JSON is an object; on failure it is <c>{"error": "..."}</c> with a
/// non-zero status.
/// </summary>
public static class Tier2AdminCommands
{
    /// <summary><c>servers.list</c>: every known server with address, attributes, capacity, load and state.</summary>
    public const string ServersList = "servers.list";

    /// <summary><c>servers.drain ID</c>: stop selecting the server (persisted) until <see cref="ServersUndrain"/>.</summary>
    public const string ServersDrain = "servers.drain";

    /// <summary><c>servers.undrain ID</c>: select the server again.</summary>
    public const string ServersUndrain = "servers.undrain";

    /// <summary><c>servers.rm ID</c>: forget a server that is not connected.</summary>
    public const string ServersRemove = "servers.rm";

    /// <summary><c>clients.set ID k=v ...</c>: create or replace a client record.</summary>
    public const string ClientsSet = "clients.set";

    /// <summary><c>clients.get ID</c>: one client record.</summary>
    public const string ClientsGet = "clients.get";

    /// <summary><c>clients.rm ID</c>: delete a client record.</summary>
    public const string ClientsRemove = "clients.rm";

    /// <summary><c>clients.list</c>: every client record.</summary>
    public const string ClientsList = "clients.list";

    /// <summary><c>networks.set CIDR k=v ...</c>: create or replace a network rule.</summary>
    public const string NetworksSet = "networks.set";

    /// <summary><c>networks.rm CIDR</c>: delete a network rule.</summary>
    public const string NetworksRemove = "networks.rm";

    /// <summary><c>networks.list</c>: every network rule.</summary>
    public const string NetworksList = "networks.list";

    /// <summary>
    /// <c>explain CLIENT [REQUIREMENT [CLIENT-IP]]</c>: every server, kept or dropped for this client and
    /// requirement, with the reason and the score.
    /// </summary>
    public const string Explain = "explain";

    /// <summary>Status: done.</summary>
    public const ushort StatusOk = 0;

    /// <summary>Status: the command or its arguments are invalid.</summary>
    public const ushort StatusBadRequest = 1;

    /// <summary>Status: the server, client or network named does not exist.</summary>
    public const ushort StatusNotFound = 2;

    /// <summary>Status: the change could not be made durable (the store failed); nothing was changed.</summary>
    public const ushort StatusStoreFailed = 3;
}
