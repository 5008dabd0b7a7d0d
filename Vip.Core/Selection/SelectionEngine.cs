using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Text;
using System.Text.Unicode;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Vip.Selection.Policies;

namespace Vip.Selection;

/// <summary>
/// The tier-2 daemon's in-memory selection engine: holds the app servers (registrations, heartbeats), the
/// client records and network rules, and picks one app server per task. Decisions read immutable snapshots
/// without locks and allocate nothing in steady state; heartbeats update per-server counters in place;
/// registrations and client changes are gathered and published as new snapshots.
/// </summary>
public sealed class SelectionEngine : IDisposable
{
    private const string NoMatchMessage = "no up server matches the requirement and bindings";
    private const string OverloadedMessage = "every matching server is at capacity";
    private const string UnknownClientMessage = "unknown client";

    private readonly SelectionConfig _config;
    private readonly TimeProvider _time;
    private readonly Random? _random;
    private readonly Lock _randomLock = new();
    private readonly ILogger _logger;
    private readonly RequirementCache _cache;
    private readonly ISelectionPolicy _policy;
    private readonly WeightedRoundRobinPolicy? _roundRobin;
    private readonly long _expireTicks;

    private readonly Lock _gate = new();
    private readonly Dictionary<string, ServerEntry> _registered = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ServerLive> _live = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ServerLive>.AlternateLookup<ReadOnlySpan<char>> _liveLookup;
    private readonly LiveTable _table;
    private readonly Dictionary<string, ClientRecord> _clientRecords = new(StringComparer.Ordinal);
    private NetworkRule[] _rules = [];
    private bool _serversDirty;
    private bool _clientsDirty;
    private bool _publishArmed;
    private ITimer? _timer;
    private readonly ITimer _sweep;
    private bool _disposed;

    private ServerSet _servers;
    private ClientSet _clients;

    /// <summary>Creates an engine with no servers and no clients.</summary>
    /// <param name="options">Options; validated here (an invalid value throws <see cref="ArgumentException"/>).</param>
    /// <param name="timeProvider">Clock for heartbeat expiry and the publish timer; <see cref="TimeProvider.System"/> when null.</param>
    /// <param name="random">Source of randomness for tie-breaking and power of two choices; a shared thread-safe one when null.
    /// Pass a seeded instance for deterministic tests (calls are then serialised on it).</param>
    /// <param name="logger">Logger; none when null.</param>
    public SelectionEngine(SelectionOptions options, TimeProvider? timeProvider = null, Random? random = null, ILogger<SelectionEngine>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _config = new SelectionConfig(options);
        _time = timeProvider ?? TimeProvider.System;
        _random = random;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _cache = new RequirementCache(_config.RequirementCacheSize, _config.Limits);
        _expireTicks = (long)(_config.ExpireAfter.TotalSeconds * _time.TimestampFrequency);
        _liveLookup = _live.GetAlternateLookup<ReadOnlySpan<char>>();
        _table = new LiveTable(_time.TimestampFrequency);
        _policy = _config.Policy switch
        {
            SelectionPolicy.PowerOfTwoChoices => new PowerOfTwoChoicesPolicy(),
            SelectionPolicy.WeightedRoundRobin => _roundRobin = new WeightedRoundRobinPolicy(),
            SelectionPolicy.ClientAffinity => new ClientAffinityPolicy(),
            _ => new LeastLoadPolicy(),
        };
        _servers = ServerSet.Empty(_config);
        _clients = ClientSet.Empty(_config);

        // Decisions compare heartbeat times in wrapping rank-word units; the sweep takes every long-silent server
        // out for good (until it is heard again) well before its age could wrap round to look recent.
        TimeSpan every = _config.ExpireAfter < TimeSpan.FromHours(1) ? _config.ExpireAfter : TimeSpan.FromHours(1);
        _sweep = _time.CreateTimer(static s => ((SelectionEngine)s!).SweepExpired(), this, every, every);
    }

    /// <summary>The options the engine runs with.</summary>
    public SelectionOptions Options => _config.Options;

    /// <summary>The current server snapshot.</summary>
    public ServerSet Servers => Volatile.Read(ref _servers);

    /// <summary>The current client snapshot.</summary>
    public ClientSet Clients => Volatile.Read(ref _clients);

    /// <summary>Clock ticks per rank-word time unit, as a shift (tests reason about the coarse clock with it).</summary>
    internal int HeardShift => _table.HeardShift;

    /// <summary>The parsed-requirement cache (its caps come from the options).</summary>
    public RequirementCache Requirements => _cache;

    // ---------------------------------------------------------------- servers

    /// <summary>Registers an app server, or updates it when the id is known (live counters are kept).</summary>
    /// <param name="registration">The registration.</param>
    /// <param name="initialState"><see cref="ServerState.Up"/> for a live REGISTER (counts as heard now);
    /// <see cref="ServerState.Unknown"/> for a record reloaded from the store (not a candidate until its next heartbeat).</param>
    /// <returns>The server entry.</returns>
    /// <exception cref="ArgumentException">The registration is invalid, or the server limit is reached.</exception>
    public ServerEntry Register(ServerRegistration registration, ServerState initialState = ServerState.Up)
    {
        if (!TryRegister(registration, out ServerEntry? entry, out string? error, initialState))
        {
            throw new ArgumentException(error, nameof(registration));
        }

        return entry;
    }

    /// <summary>Registers an app server without throwing (for the REGISTER handler).</summary>
    /// <param name="registration">The registration.</param>
    /// <param name="entry">The entry, when accepted.</param>
    /// <param name="error">Why it was refused (one line), when refused.</param>
    /// <param name="initialState">See <see cref="Register"/>.</param>
    /// <returns>True when accepted.</returns>
    public bool TryRegister(ServerRegistration registration, [NotNullWhen(true)] out ServerEntry? entry, [NotNullWhen(false)] out string? error, ServerState initialState = ServerState.Up) =>
        TryRegister(registration, out entry, out error, initialState, logEach: true);

    private bool TryRegister(ServerRegistration registration, [NotNullWhen(true)] out ServerEntry? entry, [NotNullWhen(false)] out string? error, ServerState initialState, bool logEach)
    {
        ArgumentNullException.ThrowIfNull(registration);
        entry = null;
        error = registration.Validate(_config.Options);
        if (error is not null)
        {
            SelectionLog.RegistrationRefused(_logger, registration.Id ?? string.Empty, error);
            return false;
        }

        bool changed;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _registered.TryGetValue(registration.Id, out ServerEntry? old);
            if (old is null && _registered.Count >= _config.MaxServers)
            {
                error = $"server limit of {_config.MaxServers} reached";
                SelectionLog.RegistrationRefused(_logger, registration.Id, error);
                return false;
            }

            ServerLive live = old?.Live ?? _table.Take(PolicyHash.Stable(registration.Id));
            int weight = _config.WeightOf(registration);
            live.SetCapacity(registration.Capacity, weight);
            if (old is null)
            {
                _roundRobin?.OnRegistered(live);
            }

            if (initialState == ServerState.Unknown)
            {
                live.State = (int)ServerState.Unknown;
            }
            else
            {
                live.MarkHeard(initialState, _time.GetTimestamp(), _time.GetUtcNow().UtcTicks);
            }

            changed = old is null || !Same(old.Registration, registration);
            entry = changed ? new ServerEntry(registration, weight, live) : old!;
            if (changed)
            {
                _registered[registration.Id] = entry;
                _live[registration.Id] = live;
                _serversDirty = true;
                SchedulePublishLocked();
            }
        }

        if (changed && logEach)
        {
            SelectionLog.ServerRegistered(_logger, registration.Id, registration.Service, registration.Capacity);
        }

        return true;
    }

    /// <summary>Registers many servers with one snapshot rebuild (store reload at start-up) and one log line for the batch.</summary>
    /// <param name="registrations">The registrations; invalid ones are skipped and logged.</param>
    /// <param name="initialState">Usually <see cref="ServerState.Unknown"/>: reloaded servers wait for their next heartbeat.</param>
    /// <returns>How many were accepted.</returns>
    public int RegisterMany(IEnumerable<ServerRegistration> registrations, ServerState initialState = ServerState.Unknown)
    {
        ArgumentNullException.ThrowIfNull(registrations);
        int accepted = 0;
        lock (_gate)
        {
            // Hold the publication back until the whole batch is in (the lock is re-entrant).
            bool armed = _publishArmed;
            _publishArmed = true;
            try
            {
                // One summary line, not one per server: a restart reloads every server at once.
                foreach (ServerRegistration r in registrations)
                {
                    if (TryRegister(r, out _, out _, initialState, logEach: false))
                    {
                        accepted++;
                    }
                }
            }
            finally
            {
                _publishArmed = armed;
            }

            if (_serversDirty)
            {
                SchedulePublishLocked();
            }
        }

        SelectionLog.ServersLoaded(_logger, accepted, initialState);
        return accepted;
    }

    /// <summary>Removes a server (DEREGISTER, or an admin removal). It stops being chosen at once.</summary>
    /// <param name="serverId">The server id.</param>
    /// <returns>True when the server was registered.</returns>
    public bool Deregister(string serverId)
    {
        ArgumentNullException.ThrowIfNull(serverId);
        lock (_gate)
        {
            if (!_registered.Remove(serverId, out ServerEntry? old))
            {
                return false;
            }

            _live.TryRemove(serverId, out _);

            // Snapshots still holding the entry must stop choosing it before the next publication (and after it,
            // when its slot goes to another server).
            old.Live.State = (int)ServerState.Unknown;
            old.Live.Removed = true;
            _table.Release(old.Live);
            _serversDirty = true;
            SchedulePublishLocked();
        }

        SelectionLog.ServerDeregistered(_logger, serverId);
        return true;
    }

    /// <summary>Applies a HEARTBEAT: state, load, active tasks; resets the issued-ticket count. Never rebuilds a snapshot.</summary>
    /// <param name="serverId">The server id as UTF-8 (a slice of the frame).</param>
    /// <param name="heartbeat">The figures.</param>
    /// <returns>False when the server is not registered (the control link should ask it to REGISTER again).</returns>
    public bool Heartbeat(ReadOnlySpan<byte> serverId, in ServerHeartbeat heartbeat)
    {
        Span<char> chars = stackalloc char[256];
        if (serverId.IsEmpty || serverId.Length > 255
            || Utf8.ToUtf16(serverId, chars, out _, out int written, replaceInvalidSequences: false) != System.Buffers.OperationStatus.Done
            || !_liveLookup.TryGetValue(chars[..written], out ServerLive? live))
        {
            return false;
        }

        Apply(live, heartbeat);
        return true;
    }

    /// <summary>Applies a HEARTBEAT for a server id given as a string.</summary>
    /// <param name="serverId">The server id.</param>
    /// <param name="heartbeat">The figures.</param>
    /// <returns>False when the server is not registered.</returns>
    public bool Heartbeat(string serverId, in ServerHeartbeat heartbeat)
    {
        ArgumentNullException.ThrowIfNull(serverId);
        if (!_live.TryGetValue(serverId, out ServerLive? live))
        {
            return false;
        }

        Apply(live, heartbeat);
        return true;
    }

    private void Apply(ServerLive live, in ServerHeartbeat hb)
    {
        live.LoadPermille = Math.Clamp(hb.LoadPermille, 0, 1000);
        live.SetActive(Math.Max(0, hb.ActiveTasks));
        _roundRobin?.OnHeartbeat(live);
        live.MarkHeard(hb.Draining ? ServerState.Draining : ServerState.Up, _time.GetTimestamp(), _time.GetUtcNow().UtcTicks);
    }

    /// <summary>
    /// Marks every server of the current snapshot whose last heartbeat is older than the expiry as out until it is
    /// heard again (runs on a timer every expiry period, at most hourly). Decisions already skip expired servers;
    /// the mark keeps their wrapping clock from ever calling a server that stays silent for weeks fresh again.
    /// </summary>
    /// <returns>How many servers were marked now.</returns>
    internal int SweepExpired()
    {
        long heardSince = _time.GetTimestamp() - _expireTicks;
        int marked = 0;
        foreach (ServerLive live in Volatile.Read(ref _servers).Live)
        {
            if (live.MarkStaleIfHeardBefore(heardSince))
            {
                marked++;
            }
        }

        return marked;
    }

    // ---------------------------------------------------------------- clients

    /// <summary>Adds or replaces a client record.</summary>
    /// <param name="client">The record.</param>
    public void SetClient(ClientRecord client)
    {
        ValidateClient(client);
        lock (_gate)
        {
            _clientRecords[client.Id] = client;
            _clientsDirty = true;
            SchedulePublishLocked();
        }
    }

    /// <summary>Removes a client record.</summary>
    /// <param name="clientId">The client id.</param>
    /// <returns>True when the client had a record.</returns>
    public bool RemoveClient(string clientId)
    {
        ArgumentNullException.ThrowIfNull(clientId);
        lock (_gate)
        {
            if (!_clientRecords.Remove(clientId))
            {
                return false;
            }

            _clientsDirty = true;
            SchedulePublishLocked();
            return true;
        }
    }

    /// <summary>Replaces every client record at once (store reload).</summary>
    /// <param name="clients">The records.</param>
    public void ReplaceClients(IEnumerable<ClientRecord> clients)
    {
        ArgumentNullException.ThrowIfNull(clients);
        var list = clients.ToList();
        list.ForEach(ValidateClient);
        lock (_gate)
        {
            _clientRecords.Clear();
            foreach (ClientRecord c in list)
            {
                _clientRecords[c.Id] = c;
            }

            _clientsDirty = true;
            SchedulePublishLocked();
        }
    }

    /// <summary>Replaces the network rules.</summary>
    /// <param name="rules">The rules; the same network twice is an error.</param>
    /// <exception cref="ArgumentException">A network is listed twice.</exception>
    public void SetNetworkRules(IEnumerable<NetworkRule> rules)
    {
        ArgumentNullException.ThrowIfNull(rules);
        NetworkRule[] list = [.. rules];
        _ = new NetworkRuleTable(_config, list); // validates before anything changes
        lock (_gate)
        {
            _rules = list;
            _clientsDirty = true;
            SchedulePublishLocked();
        }
    }

    private static void ValidateClient(ClientRecord client)
    {
        ArgumentNullException.ThrowIfNull(client);
        if (string.IsNullOrEmpty(client.Id) || Encoding.UTF8.GetByteCount(client.Id) > 255 || client.Attributes is null)
        {
            throw new ArgumentException("client id must be 1 to 255 bytes of UTF-8, with an attribute map", nameof(client));
        }
    }

    // ---------------------------------------------------------------- publication

    /// <summary>Publishes pending registrations and client changes now, instead of after <see cref="SelectionOptions.PublishDelay"/>.</summary>
    public void Publish()
    {
        long version, clientVersion;
        int count, clients;
        lock (_gate)
        {
            _publishArmed = false;
            if (!_serversDirty && !_clientsDirty)
            {
                return;
            }

            if (_serversDirty)
            {
                Volatile.Write(ref _servers, ServerSet.Build(_config, _registered.Values, _servers.Version + 1, _table.Ranks));
                _serversDirty = false;

                // Deregistered servers are out of the published snapshot: their slots may go to new servers.
                _table.Published();
            }

            if (_clientsDirty)
            {
                Volatile.Write(ref _clients, new ClientSet(_config, _clientRecords.Values, _rules, _clients.Version + 1));
                _clientsDirty = false;
            }

            (version, count, clientVersion, clients) = (_servers.Version, _servers.Count, _clients.Version, _clients.Count);
        }

        SelectionMetrics.Publishes.Add(1);
        SelectionLog.Published(_logger, version, count, clientVersion, clients);
    }

    private void SchedulePublishLocked()
    {
        if (_publishArmed)
        {
            return;
        }

        if (_config.PublishDelay == TimeSpan.Zero)
        {
            Publish();
            return;
        }

        _publishArmed = true;
        _timer ??= _time.CreateTimer(static s => ((SelectionEngine)s!).Publish(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _timer.Change(_config.PublishDelay, Timeout.InfiniteTimeSpan);
    }

    private static bool Same(ServerRegistration a, ServerRegistration b)
    {
        if (!a.Service.Equals(b.Service) || a.Capacity != b.Capacity || a.Attributes.Count != b.Attributes.Count)
        {
            return false;
        }

        foreach ((string k, string v) in b.Attributes)
        {
            if (!a.Attributes.TryGetValue(k, out string? old) || !string.Equals(old, v, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Stops the publish timer.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _timer?.Dispose();
            _timer = null;
            _sweep.Dispose();
        }
    }

    // ---------------------------------------------------------------- decisions

    /// <summary>
    /// Picks the app server for one task and counts the ticket against it. Allocates nothing once the
    /// requirement has been seen and the per-thread buffers have grown to the snapshot.
    /// </summary>
    /// <param name="request">The task.</param>
    /// <returns>The chosen server with ranked alternatives, or the reason there is none.</returns>
    public SelectionResult Select(in SelectionRequest request) => Decide(request, commit: true);

    /// <summary>
    /// Takes back the ticket a successful <see cref="Select"/> counted, when the task did not go to the server
    /// after all (the EXPECT could not be sent). Without it the count clears at the server's next heartbeat.
    /// </summary>
    /// <param name="result">A selected result.</param>
    public static void Release(in SelectionResult result) => result.Server?.Live.Unissue();

    private SelectionResult Decide(in SelectionRequest request, bool commit) => Decide(Volatile.Read(ref _servers), request, commit);

    /// <summary>A decision on a given snapshot (tests: a decision that started before a newer snapshot was published).</summary>
    internal SelectionResult SelectOn(ServerSet set, in SelectionRequest request) => Decide(set, request, commit: true);

    private SelectionResult Decide(ServerSet set, in SelectionRequest request, bool commit)
    {
        ClientSet clients = Volatile.Read(ref _clients);

        RequirementCache.Entry entry = _cache.Get(request.Requirement);
        if (entry.Error is { } error)
        {
            return Reject(SelectionOutcome.Malformed, error.Message, error.Position);
        }

        CompiledRequirement compiled = entry.Compiled is { } c && c.Set == set ? c : Compile(entry, set);

        if (!clients.TryFind(request.ClientId, out ClientProfile? record))
        {
            return Reject(SelectionOutcome.Malformed, "client id is not valid UTF-8");
        }

        if (record is null && _config.UnknownClients == UnknownClientMode.Reject)
        {
            return Reject(SelectionOutcome.UnknownClient, UnknownClientMessage);
        }

        ReadOnlySpan<byte> address = request.ClientAddress;
        if (address.Length is not (0 or 4 or 16))
        {
            return Reject(SelectionOutcome.Malformed, "client address must be 4 or 16 bytes");
        }

        ClientProfile? rule = clients.MatchRule(address);
        ClientProfile? defaults = record is null ? clients.Defaults : null;

        // The candidate set is the AND of a few prepared bitmaps of the snapshot: the requirement's filter terms,
        // the task kind, and the binding keys of the client and of the task.
        SelectionScratch scratch = SelectionScratch.For(set, compiled.Preferences.Length + _config.Preferences.Length, 2 + _config.BindingKeys.Length + request.AttributeCount);
        ulong[][] parts = scratch.Parts;
        int partCount = 0;
        parts[partCount++] = compiled.Filter ?? set.All;

        Span<char> chars = scratch.Chars;
        if (set.KindsInUse)
        {
            if (set.TryGetKindMask(request.Kind, out ulong[]? known))
            {
                parts[partCount++] = known;
            }
            else if (!Decode(request.Kind, chars, out int n))
            {
                return Reject(SelectionOutcome.Malformed, "task kind is not valid UTF-8");
            }
            else
            {
                parts[partCount++] = set.KindLookup.TryGetValue(chars[..n], out ulong[]? kindMask) ? kindMask : set.NoKindMask;
            }
        }

        // Binding keys: the client's value (record, then network rule, then defaults) must be the server's.
        string[] bindingKeys = _config.BindingKeys;
        for (int j = 0; j < bindingKeys.Length; j++)
        {
            string? value = record?.Bindings[j] ?? rule?.Bindings[j] ?? defaults?.Bindings[j];
            if (value is not null)
            {
                if (!set.Bindings[j].ByValue.TryGetValue(value, out ulong[]? bound))
                {
                    return Reject(SelectionOutcome.NoMatchingServer, NoMatchMessage, retryAfter: _config.NoMatchRetryAfter);
                }

                parts[partCount++] = bound;
            }
            else if (_config.ReservedBindings)
            {
                parts[partCount++] = set.Bindings[j].Absent;
            }
        }

        // Task attributes bind the same way, on top of the client's binding.
        var reader = new AttributeReader(request.AttributePairs, request.AttributeCount);
        while (reader.Next(out ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value))
        {
            for (int j = 0; j < bindingKeys.Length; j++)
            {
                if (!key.SequenceEqual(_config.BindingKeysUtf8[j]))
                {
                    continue;
                }

                if (!Decode(value, chars, out int n))
                {
                    return Reject(SelectionOutcome.Malformed, "task attribute is not valid UTF-8");
                }

                if (!set.Bindings[j].Lookup.TryGetValue(chars[..n], out ulong[]? bound))
                {
                    return Reject(SelectionOutcome.NoMatchingServer, NoMatchMessage, retryAfter: _config.NoMatchRetryAfter);
                }

                // Room was made for one part per task attribute (a key matches at most one binding key).
                parts[partCount++] = bound;
            }
        }

        if (reader.Malformed)
        {
            return Reject(SelectionOutcome.Malformed, "task attributes are malformed");
        }

        // Preferences: the requirement's, then the client's configured preference keys.
        Probe[] probes = scratch.Probes;
        int probeCount = 0;
        foreach (Probe p in compiled.Preferences)
        {
            probes[probeCount++] = p;
        }

        for (int j = 0; j < _config.Preferences.Length; j++)
        {
            // The value comes from the record, else the network rule, else the defaults; its servers are looked
            // up once per (profile, snapshot).
            ClientProfile? source = record?.Preferences[j] is not null ? record : rule?.Preferences[j] is not null ? rule : defaults?.Preferences[j] is not null ? defaults : null;
            if (source?.PreferencePostings(set)[j] is { } posting)
            {
                probes[probeCount++] = new Probe(posting, null, false, _config.Preferences[j].Weight);
            }
        }

        long heardSince = _time.GetTimestamp() - _expireTicks;
        var scan = new CandidateScan
        {
            Lives = set.Live,
            IdHashes = set.IdHashes,
            Ranks = set.Ranks,
            SlotMap = set.SlotMap,
            Probes = probes.AsSpan(0, probeCount),
            Scratch0 = scratch.Preference0.AsSpan(0, set.WordCount),
            Scratch1 = scratch.Preference1.AsSpan(0, set.WordCount),
            Scratch2 = scratch.Tier.AsSpan(0, set.WordCount),
            HeardSince = RankWord.Heard(heardSince, _table.HeardShift),
            Seed = NextSeed(),
            ClientHash = _config.Policy == SelectionPolicy.ClientAffinity ? PolicyHash.Stable(request.ClientId) : 0,
            ScoreFirst = _config.PreferenceMode == PreferenceMode.ScoreFirst,
            Top = scratch.Top.AsSpan(0, 1 + _config.MaxAlternatives),
        };

        // Least load, for real: the thread's short list for this query, brought up to date from the change log.
        if (commit && _config.Policy == SelectionPolicy.LeastLoad)
        {
            return DecideFromShortList(set, scratch, parts.AsSpan(0, partCount), ref scan, heardSince);
        }

        // Otherwise one pass over the matching servers: drop those not up, expired or full; rank the rest.
        Span<ulong> mask = scratch.Mask.AsSpan(0, set.WordCount);
        parts[0].CopyTo(mask);
        for (int k = 1; k < partCount; k++)
        {
            Bits.And(mask, parts[k]);
        }

        scan.Mask = mask;
        _policy.Rank(ref scan);
        while (DropUnfit(ref scan, mask, heardSince))
        {
            _policy.Rank(ref scan);
        }

        if (scan.Filled == 0)
        {
            return scan.SawFull
                ? Reject(SelectionOutcome.Overloaded, OverloadedMessage, retryAfter: _config.OverloadedRetryAfter)
                : Reject(SelectionOutcome.NoMatchingServer, NoMatchMessage, retryAfter: _config.NoMatchRetryAfter);
        }

        _policy.Settle(ref scan, commit);
        int chosen = scan.Top[0].Index;
        if (commit)
        {
            set.Live[chosen].Issue();
            SelectionMetrics.Decisions.Add(1, SelectionMetrics.OutcomeTag(SelectionOutcome.Selected));
        }

        Span<int> alternatives = scratch.Alternatives.AsSpan(0, scan.Filled - 1);
        for (int a = 1; a < scan.Filled; a++)
        {
            alternatives[a - 1] = scan.Top[a].Index;
        }

        return new SelectionResult(set, chosen, alternatives);
    }

    /// <summary>
    /// A least-load decision from this thread's short list for the query: apply the logged changes, rebuild from a
    /// walk when the list ran short (or is new), check the head against the counters, then choose at random among
    /// the entries that tie with the best on score and load (the walk would break that tie at random too).
    /// </summary>
    private SelectionResult DecideFromShortList(ServerSet set, SelectionScratch scratch, ReadOnlySpan<ulong[]> parts, ref CandidateScan scan, long heardSince)
    {
        ReadOnlySpan<Probe> probes = scan.Probes;
        int hash = ShortList.HashOf(set, parts, probes);
        ref ShortList? slot = ref scratch.ShortLists[hash & (scratch.ShortLists.Length - 1)];
        ShortList list = slot ??= new ShortList();
        int wanted = 1 + _config.MaxAlternatives;
        ChangeLog log = _table.Log;

        // A walk costs about a word per 64 servers and a few ns per candidate; past this many changes it is cheaper.
        int most = Math.Max(64, set.Count / 16);
        bool rebuilt = false;
        if (!list.IsFor(set, hash, parts, probes) || !list.CatchUp(log, set, probes, scan.HeardSince, scan.ScoreFirst, most))
        {
            list.Rebuild(set, hash, parts, probes, ref scan, new TieMap(scan.Seed), log);
            rebuilt = true;
        }

        int pick;
        while (true)
        {
            // Short of alternatives while candidates may be missing (or nothing at all to tell full from none): walk.
            if (!rebuilt && (list.Count == 0 || (list.Count < wanted && list.Bound != ulong.MaxValue)))
            {
                list.Rebuild(set, hash, parts, probes, ref scan, new TieMap(scan.Seed), log);
                rebuilt = true;
            }

            bool dropped = false;
            for (int k = 0; k < wanted && k < list.Count; k++)
            {
                if (TakeOutIfUnfit(list, set, k, scan.HeardSince, heardSince))
                {
                    k--;
                    dropped = true;
                }
            }

            if (list.Count == 0)
            {
                if (dropped && !rebuilt)
                {
                    continue;
                }

                return list.SawFull
                    ? Reject(SelectionOutcome.Overloaded, OverloadedMessage, retryAfter: _config.OverloadedRetryAfter)
                    : Reject(SelectionOutcome.NoMatchingServer, NoMatchMessage, retryAfter: _config.NoMatchRetryAfter);
            }

            if (dropped)
            {
                rebuilt = false;
                continue;
            }

            // The choice: at random among the entries tied with the best; one beyond the checked head is checked too.
            int tied = list.TiedAtHead();
            pick = tied > 1 ? (int)(scan.Seed % (ulong)tied) : 0;
            if (pick < wanted || !TakeOutIfUnfit(list, set, pick, scan.HeardSince, heardSince))
            {
                break;
            }
        }

        int chosen = list.Tie.IndexOf(list[pick]);
        set.Live[chosen].Issue();
        SelectionMetrics.Decisions.Add(1, SelectionMetrics.OutcomeTag(SelectionOutcome.Selected));

        int count = Math.Min(wanted, list.Count) - 1;
        Span<int> alternatives = scratch.Alternatives.AsSpan(0, count);
        for (int a = 0, k = 0; a < count; k++)
        {
            if (k != pick)
            {
                alternatives[a++] = list.Tie.IndexOf(list[k]);
            }
        }

        return new SelectionResult(set, chosen, alternatives);
    }

    /// <summary>
    /// Checks one entry of a short list against the counters and takes it out when it must not be chosen now (as
    /// <see cref="DropUnfit(ref CandidateScan, Span{ulong}, long)"/> does for a walk; also when its rank word says
    /// no, for a change whose log entry is not visible yet). True when it was taken out.
    /// </summary>
    private static bool TakeOutIfUnfit(ShortList list, ServerSet set, int position, uint since, long heardSince)
    {
        int i = list.Tie.IndexOf(list[position]);
        ServerLive live = set.Live[i];
        if (live.Removed)
        {
            // Its slot may hold another server now: a walk would read that server's word, so out of the set.
            list.Exclude(i);
            return true;
        }

        if (live.LastHeardTimestamp < heardSince || !CandidateScan.IsCandidate(set.RankOf(i), since))
        {
            // Expired ones are marked, so their word says no from now on (to a rebuild's walk too).
            live.MarkStaleIfHeardBefore(heardSince);
            list.Remove(list[position] & TieMap.Mask);
            return true;
        }

        return false;
    }

    /// <summary>
    /// Checks the short list against the counters themselves and clears from the mask any entry that must not be
    /// chosen, saying whether to rank again (rare): a server expired by less than one rank-word time unit (the
    /// walk counts equal units as heard), or one deregistered after this snapshot was published, whose slot
    /// another server now has (the walk read that server's word).
    /// </summary>
    private static bool DropUnfit(ref CandidateScan scan, Span<ulong> mask, long heardSince)
    {
        bool any = false;
        for (int k = 0; k < scan.Filled; k++)
        {
            int i = scan.Top[k].Index;
            ServerLive live = scan.Lives[i];
            if (live.Removed || live.LastHeardTimestamp < heardSince)
            {
                // Out until heard again: the next walks skip it without this check.
                live.MarkStaleIfHeardBefore(heardSince);
                mask[i >> 6] &= ~(1UL << i);
                any = true;
            }
        }

        return any;
    }

    private static CompiledRequirement Compile(RequirementCache.Entry entry, ServerSet set)
    {
        CompiledRequirement compiled = CompiledRequirement.Compile(entry.Expression!, set);
        entry.Compiled = compiled;
        return compiled;
    }

    private static bool Decode(ReadOnlySpan<byte> utf8, Span<char> chars, out int written)
    {
        written = 0;
        return utf8.Length <= 255
            && Utf8.ToUtf16(utf8, chars, out _, out written, replaceInvalidSequences: false) == System.Buffers.OperationStatus.Done;
    }

    private static SelectionResult Reject(SelectionOutcome outcome, string message, int position = -1, TimeSpan retryAfter = default)
    {
        SelectionMetrics.Decisions.Add(1, SelectionMetrics.OutcomeTag(outcome));
        return new SelectionResult(outcome, message, position, retryAfter);
    }

    private ulong NextSeed()
    {
        if (_random is null)
        {
            return (ulong)Random.Shared.NextInt64(long.MinValue, long.MaxValue);
        }

        lock (_randomLock)
        {
            return (ulong)_random.NextInt64(long.MinValue, long.MaxValue);
        }
    }

    // ---------------------------------------------------------------- explain

    /// <summary>
    /// Explains where a task would go: every server with the reason it is kept or dropped, its preference
    /// score and load, and the ranking of a dry run (no ticket counted). Allocates; for <c>vipd ctl explain</c>.
    /// </summary>
    /// <param name="request">The task.</param>
    /// <returns>The explanation.</returns>
    public SelectionExplanation Explain(in SelectionRequest request)
    {
        ServerSet set = Volatile.Read(ref _servers);
        ClientSet clients = Volatile.Read(ref _clients);
        RequirementCache.Entry entry = _cache.Get(request.Requirement);
        bool valid = clients.TryFind(request.ClientId, out ClientProfile? record);
        ClientProfile? rule = request.ClientAddress.Length is 4 or 16 ? clients.MatchRule(request.ClientAddress) : null;
        IReadOnlyDictionary<string, string> clientAttributes = clients.Merge(record, rule);
        SelectionResult dry = Decide(request, commit: false);
        if (entry.Error is not null || !valid || dry.Outcome is SelectionOutcome.Malformed or SelectionOutcome.UnknownClient)
        {
            return new SelectionExplanation(dry.Outcome, dry.Message, record is not null, clientAttributes, entry.Expression, []);
        }

        // Read the dry run's short list before anything else runs on this thread.
        var rankOf = new Dictionary<int, int>();
        if (dry.IsSelected)
        {
            rankOf[dry.ServerIndex] = 0;
            for (int a = 0; a < dry.AlternativeCount; a++)
            {
                rankOf[set.IndexOf(dry.GetAlternative(a).Id)] = a + 1;
            }
        }

        string kind = Encoding.UTF8.GetString(request.Kind);
        var taskBindings = new List<(string Key, string Value)>();
        var reader = new AttributeReader(request.AttributePairs, request.AttributeCount);
        while (reader.Next(out ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value))
        {
            string k = Encoding.UTF8.GetString(key);
            if (_config.BindingKeys.Contains(k))
            {
                taskBindings.Add((k, Encoding.UTF8.GetString(value)));
            }
        }

        RequirementExpression expression = entry.Expression!;
        long now = _time.GetTimestamp();
        var verdicts = new List<ServerVerdict>(set.Count);
        for (int i = 0; i < set.Count; i++)
        {
            ServerEntry server = set[i];
            (DropReason reason, string? detail) = Verdict(server, clientAttributes, taskBindings, kind, expression, now);
            int score = expression.PreferenceScore(server.Attributes);
            foreach ((string key, int weight) in _config.Preferences)
            {
                if (clientAttributes.TryGetValue(key, out string? cv) && server.Attributes.TryGetValue(key, out string? sv) && cv == sv)
                {
                    score += weight;
                }
            }

            int rank = rankOf.TryGetValue(i, out int r) ? r : -1;
            verdicts.Add(new ServerVerdict(server, reason, detail, score, server.Load, rank));
        }

        verdicts.Sort(static (a, b) => string.CompareOrdinal(a.Server.Id, b.Server.Id));
        return new SelectionExplanation(dry.Outcome, dry.Message, record is not null, clientAttributes, expression, verdicts);
    }

    private (DropReason, string?) Verdict(
        ServerEntry server,
        IReadOnlyDictionary<string, string> client,
        List<(string Key, string Value)> taskBindings,
        string kind,
        RequirementExpression expression,
        long now)
    {
        IReadOnlyDictionary<string, string> attrs = server.Attributes;
        foreach (string key in _config.BindingKeys)
        {
            client.TryGetValue(key, out string? cv);
            attrs.TryGetValue(key, out string? sv);
            if (cv is not null && cv != sv)
            {
                return (DropReason.BindingMismatch, $"{key}: client has {cv}, server has {sv ?? "none"}");
            }

            if (cv is null && sv is not null && _config.ReservedBindings)
            {
                return (DropReason.BindingMismatch, $"{key}: server is reserved for {sv}, client has none");
            }
        }

        foreach ((string key, string tv) in taskBindings)
        {
            if (!attrs.TryGetValue(key, out string? sv) || sv != tv)
            {
                return (DropReason.BindingMismatch, $"{key}: task asks {tv}, server has {sv ?? "none"}");
            }
        }

        if (_config.KindsOf(attrs) is { } kinds && !kinds.Contains(kind, StringComparer.Ordinal))
        {
            return (DropReason.KindNotServed, $"{_config.KindsAttribute}={attrs[_config.KindsAttribute]} lacks {kind}");
        }

        foreach (RequirementTerm term in expression.Terms)
        {
            if (!term.IsPreference && !term.IsSatisfiedBy(attrs))
            {
                return (DropReason.RequirementFailed, term.ToString());
            }
        }

        ServerLive live = server.Live;
        switch ((ServerState)live.State)
        {
            case ServerState.Unknown: return (DropReason.NotHeardFrom, null);
            case ServerState.Draining: return (DropReason.Draining, null);
        }

        if (now - live.LastHeardTimestamp > _expireTicks)
        {
            return (DropReason.Expired, $"last heard {server.LastHeard:O}");
        }

        int used = live.Active + live.Issued;
        return used >= live.Capacity
            ? (DropReason.Full, $"{used} of {live.Capacity} in use")
            : (DropReason.Kept, null);
    }
}
