using Microsoft.Extensions.Options;

namespace Vip.Selection;

/// <summary>How candidates are ranked once they pass the filters.</summary>
public enum SelectionPolicy
{
    /// <summary>Lowest (active + issued) ÷ capacity first.</summary>
    LeastLoad,

    /// <summary>Two candidates drawn at random; the less loaded one wins.</summary>
    PowerOfTwoChoices,

    /// <summary>Stride scheduling by weight (the weight attribute, else capacity): deterministic and smooth.</summary>
    WeightedRoundRobin,

    /// <summary>Rendezvous hash of the client id over the candidates: a client sticks to one server while it is a candidate.</summary>
    ClientAffinity,
}

/// <summary>Where preference scores come in the ranking.</summary>
public enum PreferenceMode
{
    /// <summary>The highest preference score wins; the policy ranks among servers with equal scores.</summary>
    ScoreFirst,

    /// <summary>The policy ranks; the preference score only breaks the policy's ties.</summary>
    TieBreak,
}

/// <summary>What happens to a task from a client id that has no client record.</summary>
public enum UnknownClientMode
{
    /// <summary>Serve it with <see cref="SelectionOptions.DefaultClientAttributes"/> (plus network rules).</summary>
    ServeWithDefaults,

    /// <summary>Refuse it: the outcome is <see cref="SelectionOutcome.UnknownClient"/> (REJECT <c>UnknownClient</c>).</summary>
    Reject,
}

/// <summary>Options of the selection engine (configuration section <c>Selection</c>). Every cap has a documented default.</summary>
public sealed class SelectionOptions
{
    /// <summary>The configuration section name.</summary>
    public const string SectionName = "Selection";

    /// <summary>Ranking policy. Default <see cref="SelectionPolicy.LeastLoad"/>.</summary>
    public SelectionPolicy Policy { get; set; } = SelectionPolicy.LeastLoad;

    /// <summary>Whether preferences rank before the policy or break its ties. Default <see cref="PreferenceMode.ScoreFirst"/>.</summary>
    public PreferenceMode PreferenceMode { get; set; } = PreferenceMode.ScoreFirst;

    /// <summary>
    /// Attribute keys that must agree between client (or task) and server, e.g. <c>pool</c>. Default: none.
    /// A client or task carrying <c>pool=gold</c> gets only servers with <c>pool=gold</c>; a server without the
    /// key is not a candidate for it. At most 8 keys.
    /// </summary>
    public IList<string> BindingKeys { get; set; } = [];

    /// <summary>
    /// When true (default), a server that carries a binding key serves only clients bound to the same value:
    /// a client without the key gets only servers without it. When false, unbound clients may use any server.
    /// </summary>
    public bool ReservedBindings { get; set; } = true;

    /// <summary>
    /// Client attribute keys that turn into preferences, with their weights: <c>{"region": 10}</c> makes a client
    /// with <c>region=eu</c> prefer servers with <c>region=eu</c> by 10 points. Default: none. At most 16 keys;
    /// weights 1 to <see cref="MaxPreferenceWeight"/>.
    /// </summary>
    public IDictionary<string, int> ClientPreferences { get; set; } = new Dictionary<string, int>(StringComparer.Ordinal);

    /// <summary>What to do with a client id that has no record. Default <see cref="UnknownClientMode.ServeWithDefaults"/>.</summary>
    public UnknownClientMode UnknownClients { get; set; } = UnknownClientMode.ServeWithDefaults;

    /// <summary>Attributes of an unknown client served with defaults; network rules win over them. Default: none.</summary>
    public IDictionary<string, string> DefaultClientAttributes { get; set; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>How often app servers are asked to heartbeat (sent in REGISTER-OK). Default 1 s; 50 ms to 1 min.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Heartbeat intervals a server may miss before it leaves the candidate set. Default 3; 1 to 100.</summary>
    public int MissedHeartbeats { get; set; } = 3;

    /// <summary>A server not heard from for this long is not a candidate: <see cref="HeartbeatInterval"/> × <see cref="MissedHeartbeats"/>.</summary>
    public TimeSpan ExpireAfter => HeartbeatInterval * MissedHeartbeats;

    /// <summary>Ranked alternatives returned with a choice (REDIRECT carries at most 8). Default 2; 0 to 8.</summary>
    public int MaxAlternatives { get; set; } = 2;

    /// <summary>Retry-after suggested with <see cref="SelectionOutcome.NoMatchingServer"/>. Default 5 s.</summary>
    public TimeSpan NoMatchRetryAfter { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Retry-after suggested with <see cref="SelectionOutcome.Overloaded"/>. Default 1 s (a heartbeat resets issued counts).</summary>
    public TimeSpan OverloadedRetryAfter { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest requirement, in characters. Default 1 024; 1 to 4 096.</summary>
    public int MaxRequirementLength { get; set; } = 1024;

    /// <summary>Most terms in one requirement. Default 32; 1 to 256.</summary>
    public int MaxRequirementTerms { get; set; } = 32;

    /// <summary>Most values in one <c>in</c>/<c>notin</c> list. Default 16; 1 to 256.</summary>
    public int MaxListItems { get; set; } = 16;

    /// <summary>Largest preference weight. Default 1 000; 1 to 10 000.</summary>
    public int MaxPreferenceWeight { get; set; } = 1000;

    /// <summary>Parsed requirements kept. Default 1 024; 2 to 1 048 576.</summary>
    public int RequirementCacheSize { get; set; } = 1024;

    /// <summary>Server attribute listing the task kinds a server runs (comma-separated). Default <c>kinds</c>.</summary>
    public string KindsAttribute { get; set; } = "kinds";

    /// <summary>Server attribute holding its weighted-round-robin weight. Default <c>weight</c>; capacity when absent.</summary>
    public string WeightAttribute { get; set; } = "weight";

    /// <summary>Most registered servers. Default 65 536; 1 to 1 048 576.</summary>
    public int MaxServers { get; set; } = 65_536;

    /// <summary>Most attributes per server (the wire allows 32). Default 32; 1 to 255.</summary>
    public int MaxServerAttributes { get; set; } = 32;

    /// <summary>Largest server capacity. Default 1 000 000.</summary>
    public int MaxCapacity { get; set; } = 1_000_000;

    /// <summary>
    /// How long registrations and client changes are gathered before a new snapshot is published, so a
    /// thousand servers registering at once cost a few rebuilds, not a thousand. Default 50 ms; 0 publishes
    /// at once (tests); at most 10 s.
    /// </summary>
    public TimeSpan PublishDelay { get; set; } = TimeSpan.FromMilliseconds(50);

    internal RequirementLimits ToLimits() => new()
    {
        MaxLength = MaxRequirementLength,
        MaxTerms = MaxRequirementTerms,
        MaxListItems = MaxListItems,
        MaxWeight = MaxPreferenceWeight,
    };

    /// <summary>Returns every problem with these options (empty when valid).</summary>
    /// <returns>One line per problem.</returns>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!Enum.IsDefined(Policy))
        {
            errors.Add($"Policy '{Policy}' is not a policy.");
        }

        if (!Enum.IsDefined(PreferenceMode))
        {
            errors.Add($"PreferenceMode '{PreferenceMode}' is not a mode.");
        }

        if (!Enum.IsDefined(UnknownClients))
        {
            errors.Add($"UnknownClients '{UnknownClients}' is not a mode.");
        }

        if (BindingKeys is null || BindingKeys.Count > 8)
        {
            errors.Add("BindingKeys must list at most 8 keys.");
        }
        else if (BindingKeys.Any(string.IsNullOrEmpty) || BindingKeys.Distinct(StringComparer.Ordinal).Count() != BindingKeys.Count)
        {
            errors.Add("BindingKeys must be distinct, non-empty keys.");
        }

        if (ClientPreferences is null || ClientPreferences.Count > 16)
        {
            errors.Add("ClientPreferences must list at most 16 keys.");
        }
        else if (ClientPreferences.Any(p => string.IsNullOrEmpty(p.Key) || p.Value < 1 || p.Value > MaxPreferenceWeight))
        {
            errors.Add($"ClientPreferences weights must be 1 to {MaxPreferenceWeight}, keys non-empty.");
        }

        if (DefaultClientAttributes is null || DefaultClientAttributes.Count > 32)
        {
            errors.Add("DefaultClientAttributes must hold at most 32 attributes.");
        }

        if (HeartbeatInterval < TimeSpan.FromMilliseconds(50) || HeartbeatInterval > TimeSpan.FromMinutes(1))
        {
            errors.Add("HeartbeatInterval must be 50 ms to 1 min.");
        }

        if (MissedHeartbeats is < 1 or > 100)
        {
            errors.Add("MissedHeartbeats must be 1 to 100.");
        }

        if (MaxAlternatives is < 0 or > 8)
        {
            errors.Add("MaxAlternatives must be 0 to 8.");
        }

        if (NoMatchRetryAfter < TimeSpan.Zero || NoMatchRetryAfter > TimeSpan.FromHours(1)
            || OverloadedRetryAfter < TimeSpan.Zero || OverloadedRetryAfter > TimeSpan.FromHours(1))
        {
            errors.Add("NoMatchRetryAfter and OverloadedRetryAfter must be 0 to 1 h.");
        }

        if (ToLimits().Validate() is { } limits)
        {
            errors.Add(limits);
        }

        if (RequirementCacheSize is < 2 or > 1 << 20)
        {
            errors.Add("RequirementCacheSize must be 2 to 1048576.");
        }

        if (string.IsNullOrEmpty(KindsAttribute) || string.IsNullOrEmpty(WeightAttribute))
        {
            errors.Add("KindsAttribute and WeightAttribute must be non-empty.");
        }

        if (MaxServers is < 1 or > 1 << 20)
        {
            errors.Add("MaxServers must be 1 to 1048576.");
        }

        if (MaxServerAttributes is < 1 or > 255)
        {
            errors.Add("MaxServerAttributes must be 1 to 255.");
        }

        if (MaxCapacity is < 1 or > 100_000_000)
        {
            errors.Add("MaxCapacity must be 1 to 100000000.");
        }

        if (PublishDelay < TimeSpan.Zero || PublishDelay > TimeSpan.FromSeconds(10))
        {
            errors.Add("PublishDelay must be 0 to 10 s.");
        }

        return errors;
    }
}

/// <summary>Validates <see cref="SelectionOptions"/> at start-up (<c>ValidateOnStart</c>).</summary>
public sealed class SelectionOptionsValidator : IValidateOptions<SelectionOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, SelectionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        IReadOnlyList<string> errors = options.Validate();
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors.Select(e => "Selection: " + e));
    }
}
