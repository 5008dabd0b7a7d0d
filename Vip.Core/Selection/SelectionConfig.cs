using System.Text;

namespace Vip.Selection;

/// <summary>An immutable copy of the validated <see cref="SelectionOptions"/>, taken once when the engine starts.</summary>
internal sealed class SelectionConfig
{
    public SelectionConfig(SelectionOptions o)
    {
        IReadOnlyList<string> errors = o.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid selection options: " + string.Join(" ", errors), nameof(o));
        }

        Policy = o.Policy;
        PreferenceMode = o.PreferenceMode;
        BindingKeys = [.. o.BindingKeys];
        BindingKeysUtf8 = [.. BindingKeys.Select(Encoding.UTF8.GetBytes)];
        ReservedBindings = o.ReservedBindings;
        Preferences = [.. o.ClientPreferences.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => (p.Key, p.Value))];
        UnknownClients = o.UnknownClients;
        DefaultClientAttributes = new Dictionary<string, string>(o.DefaultClientAttributes, StringComparer.Ordinal);
        HeartbeatInterval = o.HeartbeatInterval;
        ExpireAfter = o.ExpireAfter;
        MaxAlternatives = o.MaxAlternatives;
        NoMatchRetryAfter = o.NoMatchRetryAfter;
        OverloadedRetryAfter = o.OverloadedRetryAfter;
        Limits = o.ToLimits();
        RequirementCacheSize = o.RequirementCacheSize;
        KindsAttribute = o.KindsAttribute;
        WeightAttribute = o.WeightAttribute;
        MaxServers = o.MaxServers;
        PublishDelay = o.PublishDelay;
        Options = o;
    }

    public SelectionOptions Options { get; }

    public SelectionPolicy Policy { get; }

    public PreferenceMode PreferenceMode { get; }

    public string[] BindingKeys { get; }

    public byte[][] BindingKeysUtf8 { get; }

    public bool ReservedBindings { get; }

    public (string Key, int Weight)[] Preferences { get; }

    public UnknownClientMode UnknownClients { get; }

    public Dictionary<string, string> DefaultClientAttributes { get; }

    public TimeSpan HeartbeatInterval { get; }

    public TimeSpan ExpireAfter { get; }

    public int MaxAlternatives { get; }

    public TimeSpan NoMatchRetryAfter { get; }

    public TimeSpan OverloadedRetryAfter { get; }

    public RequirementLimits Limits { get; }

    public int RequirementCacheSize { get; }

    public string KindsAttribute { get; }

    public string WeightAttribute { get; }

    public int MaxServers { get; }

    public TimeSpan PublishDelay { get; }

    /// <summary>The server's weighted-round-robin weight: the weight attribute when it is a positive number, else capacity.</summary>
    public int WeightOf(ServerRegistration r)
    {
        if (r.Attributes.TryGetValue(WeightAttribute, out string? w) && RequirementNumber.TryParse(w, out double d) && d >= 1)
        {
            return (int)Math.Min(d, 1_000_000);
        }

        return Math.Min(r.Capacity, 1_000_000);
    }

    /// <summary>The task kinds a server lists, or null when it has no kinds attribute (it runs every kind).</summary>
    public string[]? KindsOf(IReadOnlyDictionary<string, string> attributes) =>
        attributes.TryGetValue(KindsAttribute, out string? kinds)
            ? kinds.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            : null;
}
