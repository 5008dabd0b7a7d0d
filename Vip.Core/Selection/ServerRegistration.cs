using System.Net;
using System.Text;

namespace Vip.Selection;

/// <summary>What an app server declares when it registers (the REGISTER frame, or a record reloaded from the store).</summary>
/// <param name="Id">Server id: 1 to 255 bytes of UTF-8, unique among the servers of one tier-2 daemon.</param>
/// <param name="Service">The address clients connect to.</param>
/// <param name="Capacity">Most tasks the server takes at once (active plus tickets not yet claimed); at least 1.</param>
/// <param name="Attributes">Static attributes (<c>region=eu</c>, <c>kinds=sha256,primes</c>, ...); keys non-empty.</param>
public sealed record ServerRegistration(string Id, IPEndPoint Service, int Capacity, IReadOnlyDictionary<string, string> Attributes)
{
    /// <summary>Returns the first problem with this registration under the given options, or null when it is valid.</summary>
    /// <param name="options">The selection options (caps).</param>
    /// <returns>A one-line error, or null.</returns>
    public string? Validate(SelectionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(Id) || Encoding.UTF8.GetByteCount(Id) > 255)
        {
            return "server id must be 1 to 255 bytes of UTF-8";
        }

        if (Service is null)
        {
            return $"server '{Id}' has no service address";
        }

        if (Capacity < 1 || Capacity > options.MaxCapacity)
        {
            return $"server '{Id}' capacity must be 1 to {options.MaxCapacity} (was {Capacity})";
        }

        if (Attributes is null)
        {
            return $"server '{Id}' has no attribute map";
        }

        if (Attributes.Count > options.MaxServerAttributes)
        {
            return $"server '{Id}' has {Attributes.Count} attributes (most is {options.MaxServerAttributes})";
        }

        foreach ((string key, string value) in Attributes)
        {
            if (string.IsNullOrEmpty(key) || Encoding.UTF8.GetByteCount(key) > 255 || value is null || Encoding.UTF8.GetByteCount(value) > 255)
            {
                return $"server '{Id}' has an attribute with an empty or over-long key or value";
            }
        }

        return null;
    }
}

/// <summary>One HEARTBEAT from an app server.</summary>
/// <param name="LoadPermille">The server's own load figure, 0 to 1 000 (more is clamped); shown by explain.</param>
/// <param name="ActiveTasks">Tasks the server is running now.</param>
/// <param name="Draining">True when the server takes no new tasks.</param>
public readonly record struct ServerHeartbeat(int LoadPermille, int ActiveTasks, bool Draining);
