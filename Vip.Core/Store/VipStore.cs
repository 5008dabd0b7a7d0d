using System.Collections.Immutable;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Text;
using LiteDB;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Vip.Store;

/// <summary>
/// The tier-2 daemon's store of app servers, clients and network rules: an in-memory <see cref="StoreSnapshot"/>
/// that requests read, backed by one LiteDB file (direct mode) that one background writer keeps up to date.
/// </summary>
/// <remarks>
/// <para>A write changes the snapshot at once (readers see it immediately) and queues the change for the disk.
/// The returned task completes when the change is durable: committed in a LiteDB transaction and checkpointed
/// into the data file, which is fsynced. If the disk fails, the store keeps serving from memory, logs, and
/// retries with backoff; <see cref="PendingWrites"/> counts what is not yet on disk.</para>
/// <para>Heartbeats are kept in memory (<see cref="ServerLiveness"/>); only a change of the reported
/// <see cref="ServerState"/> is written. After a restart every server is loaded but not yet heard from.</para>
/// <para>Thread-safe. Writers are serialized by one lock (memory change and queueing together, so the disk sees
/// the changes in the order memory did); readers take no lock.</para>
/// </remarks>
public sealed class VipStore : IAsyncDisposable, IDisposable
{
    private const int MaxIdBytes = 255;
    private const int MaxAttributeBytes = 255;

    private readonly StoreOptions _options;
    private readonly TimeProvider _time;
    private readonly FileStream _lockFile;
    private readonly StoreWriter _writer;
    private readonly Meter _meter;
    private readonly Lock _gate = new();
    private volatile StoreSnapshot _snapshot;
    private bool _disposed;

    private VipStore(string path, StoreOptions options, StoreSnapshot snapshot, StorePages pages, LiteDatabase db, FileStream lockFile, ILogger logger, TimeProvider time, IMeterFactory? meterFactory)
    {
        Path = path;
        _options = options;
        _snapshot = snapshot;
        _lockFile = lockFile;
        _time = time;
        _meter = meterFactory?.Create(StoreMetrics.MeterName) ?? new Meter(StoreMetrics.MeterName);
        _writer = new StoreWriter(path, db, pages, options, logger, time, _meter);
        _meter.CreateObservableGauge("vip.store.pending_writes", () => PendingWrites, "{write}", "Accepted changes not yet durable on disk.");
        _meter.CreateObservableGauge("vip.store.log.size", () => LogFileLength, "By", "Size of the LiteDB log file (emptied by each checkpoint).");
        _writer.Start();
    }

    /// <summary>Raised after every change, with the new snapshot, on the thread that made the change and under the store's write lock: keep handlers short and do not write to the store from them.</summary>
    public event EventHandler<StoreChangedEventArgs>? Changed;

    /// <summary>The full path of the LiteDB data file.</summary>
    public string Path { get; }

    /// <summary>The LiteDB log file next to it (<c>NAME-log.EXT</c>), empty between batches.</summary>
    public string LogPath => StoreDocuments.LogPathOf(Path);

    /// <summary>The current snapshot; a volatile read, no lock.</summary>
    public StoreSnapshot Snapshot => _snapshot;

    /// <summary>Changes accepted into memory and not yet durable on disk (metric <c>vip.store.pending_writes</c>).</summary>
    public long PendingWrites => _writer.PendingCount;

    /// <summary>Consecutive failed attempts to write the current batch; 0 while the disk works.</summary>
    public int FailedWriteAttempts => _writer.FailedAttempts;

    private long LogFileLength
    {
        get
        {
            try
            {
                var info = new FileInfo(LogPath);
                return info.Exists ? info.Length : 0;
            }
            catch (IOException)
            {
                return 0;
            }
        }
    }

    /// <summary>Test hook: throw from it to simulate a failing disk at a given point of a write batch.</summary>
    internal Action<StoreFaultPoint>? Faults
    {
        get => _writer.Faults;
        set => _writer.Faults = value;
    }

    /// <summary>
    /// Opens (or creates) the store file and loads it into memory. Takes an exclusive lock file (<c>PATH.lock</c>)
    /// so a second process cannot open the same store.
    /// </summary>
    /// <exception cref="StoreOpenException">The directory is missing, the store is in use, or the file is unreadable, corrupt or foreign. One line, naming the path.</exception>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public static VipStore Open(StoreOptions options, ILogger<VipStore>? logger = null, TimeProvider? time = null, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var log = (ILogger?)logger ?? NullLogger.Instance;
        var started = Stopwatch.GetTimestamp();
        var path = System.IO.Path.GetFullPath(options.Path);
        var dir = System.IO.Path.GetDirectoryName(path)!;
        if (!Directory.Exists(dir))
        {
            throw new StoreOpenException(options.Path, $"directory '{dir}' does not exist");
        }

        if (Directory.Exists(path))
        {
            throw new StoreOpenException(options.Path, "it is a directory");
        }

        FileStream lockFile;
        try
        {
            lockFile = new FileStream(path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new StoreOpenException(options.Path, $"cannot create the lock file '{path}.lock': {OneLine(ex.Message)}", ex);
        }
        catch (IOException ex)
        {
            throw new StoreOpenException(options.Path, $"it is in use by another process (the lock file '{path}.lock' is held)", ex);
        }

        LiteDatabase? db = null;
        try
        {
            var isNew = !File.Exists(path);
            CheckHeader(path);
            var prepared = Stopwatch.GetTimestamp();
            db = StoreDocuments.OpenDatabase(path);
            db.Checkpoint(); // fold in what a crash left in the log, so the log starts empty
            if (StoreDocuments.EnsureSchema(db))
            {
                StoreLog.Migrated(log, path, StoreDocuments.SchemaVersion);
            }

            if (new FileInfo(StoreDocuments.LogPathOf(path)) is { Exists: true, Length: > 0 })
            {
                StoreDocuments.EmptyLog(db);
            }

            var opened = Stopwatch.GetTimestamp();
            var snapshot = StoreDocuments.Load(db, out var pages);
            if (log.IsEnabled(LogLevel.Debug))
            {
                StoreLog.OpenPhases(
                    log,
                    path,
                    Stopwatch.GetElapsedTime(started, prepared).TotalMilliseconds,
                    Stopwatch.GetElapsedTime(prepared, opened).TotalMilliseconds,
                    Stopwatch.GetElapsedTime(opened).TotalMilliseconds,
                    System.Runtime.JitInfo.GetCompiledMethodCount(),
                    System.Runtime.JitInfo.GetCompilationTime().TotalMilliseconds,
                    GC.CollectionCount(0),
                    GC.GetTotalPauseDuration().TotalMilliseconds,
                    GC.GetTotalAllocatedBytes() / 1e6);
            }

            if (isNew)
            {
                DirectorySync.TryFsync(dir);
            }

            var store = new VipStore(path, options, snapshot, pages, db, lockFile, log, time ?? TimeProvider.System, meterFactory);
            StoreLog.Opened(log, path, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds, snapshot.Servers.Count, snapshot.Clients.Count, snapshot.Networks.Count);
            return store;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException and not StoreOpenException)
        {
            TryDispose(db);
            lockFile.Dispose();
            throw new StoreOpenException(options.Path, Describe(ex), ex);
        }
        catch
        {
            TryDispose(db);
            lockFile.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Registers an app server (REGISTER), or replaces its registration: address, attributes and capacity. Keeps
    /// its operator drain flag. Marks it heard from now, with state <see cref="ServerState.Up"/> and no load.
    /// </summary>
    /// <returns>A task that completes when the registration is durable.</returns>
    /// <exception cref="ArgumentException">An id, attribute or capacity is out of range.</exception>
    /// <exception cref="StoreLimitException">A new server would exceed <see cref="StoreOptions.MaxServers"/>.</exception>
    public Task RegisterServerAsync(AppServerRegistration registration)
    {
        ArgumentNullException.ThrowIfNull(registration);
        CheckId(registration.Id, nameof(registration));
        ArgumentNullException.ThrowIfNull(registration.Service);
        ArgumentOutOfRangeException.ThrowIfNegative(registration.Capacity);
        var attributes = CheckAttributes(registration.Attributes);
        var now = _time.GetUtcNow();
        lock (_gate)
        {
            var snap = Writable();
            ServerLiveness liveness;
            var drained = false;
            if (snap.Servers.TryGetValue(registration.Id, out var existing))
            {
                liveness = existing.Liveness;
                drained = existing.Record.AdminDrained;
            }
            else
            {
                if (snap.Servers.Count >= _options.MaxServers)
                {
                    throw new StoreLimitException($"the store holds {snap.Servers.Count} app servers, the most Store:MaxServers allows");
                }

                liveness = new ServerLiveness();
            }

            liveness.Heard(now.ToUnixTimeMilliseconds(), 0, 0);
            var record = new AppServerRecord(registration.Id, registration.Service, attributes, registration.Capacity, ServerState.Up, drained, now, now);
            var next = snap.With(servers: snap.Servers.SetItem(record.Id, new ServerEntry(record, liveness)));
            return Commit(next, StoreChangeKind.ServerSet, StoreCollection.Servers, record.Id, record);
        }
    }

    /// <summary>
    /// Records a HEARTBEAT in memory (no disk write), and queues a write only when the reported state changed.
    /// Allocates nothing when the state is unchanged.
    /// </summary>
    /// <returns>False when no server has this id (it must register first).</returns>
    public bool Heartbeat(string serverId, ServerState state, int loadPermille, int activeTasks)
    {
        ArgumentNullException.ThrowIfNull(serverId);
        if (!_snapshot.Servers.TryGetValue(serverId, out var entry))
        {
            return false;
        }

        var now = _time.GetUtcNow();
        entry.Liveness.Heard(now.ToUnixTimeMilliseconds(), Math.Max(0, loadPermille), Math.Max(0, activeTasks));
        if (entry.Record.State == state)
        {
            return true;
        }

        lock (_gate)
        {
            if (_disposed)
            {
                return true; // shutting down: the in-memory update is all a heartbeat needs
            }

            var snap = _snapshot;
            if (!snap.Servers.TryGetValue(serverId, out entry))
            {
                return false;
            }

            if (entry.Record.State != state)
            {
                var record = entry.Record with { State = state, LastSeen = now };
                var next = snap.With(servers: snap.Servers.SetItem(serverId, entry with { Record = record }));
                _ = Commit(next, StoreChangeKind.ServerSet, StoreCollection.Servers, serverId, record, wait: false);
            }
        }

        return true;
    }

    /// <summary>Removes an app server (DEREGISTER).</summary>
    /// <returns>False at once if there was no such server; otherwise true, once the removal is durable.</returns>
    public Task<bool> DeregisterServerAsync(string serverId)
    {
        ArgumentNullException.ThrowIfNull(serverId);
        lock (_gate)
        {
            var snap = Writable();
            if (!snap.Servers.ContainsKey(serverId))
            {
                return Task.FromResult(false);
            }

            return True(Commit(snap.With(servers: snap.Servers.Remove(serverId)), StoreChangeKind.ServerRemoved, StoreCollection.Servers, serverId, null));
        }
    }

    /// <summary>Sets or clears the operator drain flag of an app server (<c>vipd ctl servers drain ID</c>).</summary>
    /// <returns>False at once if there was no such server; otherwise true, once the change is durable.</returns>
    public Task<bool> SetServerDrainedAsync(string serverId, bool drained)
    {
        ArgumentNullException.ThrowIfNull(serverId);
        lock (_gate)
        {
            var snap = Writable();
            if (!snap.Servers.TryGetValue(serverId, out var entry))
            {
                return Task.FromResult(false);
            }

            var record = entry.Record with { AdminDrained = drained };
            var next = snap.With(servers: snap.Servers.SetItem(serverId, entry with { Record = record }));
            return True(Commit(next, StoreChangeKind.ServerSet, StoreCollection.Servers, serverId, record));
        }
    }

    /// <summary>Sets (replaces) a client's attributes (<c>vipd ctl clients set ID k=v ...</c>).</summary>
    /// <returns>A task that completes when the change is durable.</returns>
    /// <exception cref="ArgumentException">The id or an attribute is out of range.</exception>
    /// <exception cref="StoreLimitException">A new client would exceed <see cref="StoreOptions.MaxClients"/>.</exception>
    public Task SetClientAsync(string clientId, IReadOnlyDictionary<string, string> attributes)
    {
        CheckId(clientId, nameof(clientId));
        var frozen = CheckAttributes(attributes);
        var now = _time.GetUtcNow();
        lock (_gate)
        {
            var snap = Writable();
            if (!snap.Clients.ContainsKey(clientId) && snap.Clients.Count >= _options.MaxClients)
            {
                throw new StoreLimitException($"the store holds {snap.Clients.Count} clients, the most Store:MaxClients allows");
            }

            var record = new ClientRecord(clientId, frozen, now);
            return Commit(snap.With(clients: snap.Clients.SetItem(clientId, record)), StoreChangeKind.ClientSet, StoreCollection.Clients, clientId, record);
        }
    }

    /// <summary>Removes a client (<c>vipd ctl clients rm ID</c>).</summary>
    /// <returns>False at once if there was no such client; otherwise true, once the removal is durable.</returns>
    public Task<bool> RemoveClientAsync(string clientId)
    {
        ArgumentNullException.ThrowIfNull(clientId);
        lock (_gate)
        {
            var snap = Writable();
            if (!snap.Clients.ContainsKey(clientId))
            {
                return Task.FromResult(false);
            }

            return True(Commit(snap.With(clients: snap.Clients.Remove(clientId)), StoreChangeKind.ClientRemoved, StoreCollection.Clients, clientId, null));
        }
    }

    /// <summary>Sets (replaces) the attributes of an address block (<c>vipd ctl networks set CIDR k=v ...</c>).</summary>
    /// <returns>A task that completes when the change is durable.</returns>
    /// <exception cref="ArgumentException">An attribute is out of range.</exception>
    /// <exception cref="StoreLimitException">A new rule would exceed <see cref="StoreOptions.MaxNetworkRules"/>.</exception>
    public Task SetNetworkRuleAsync(IPNetwork network, IReadOnlyDictionary<string, string> attributes)
    {
        var frozen = CheckAttributes(attributes);
        var now = _time.GetUtcNow();
        lock (_gate)
        {
            var snap = Writable();
            if (!snap.Networks.ContainsKey(network) && snap.Networks.Count >= _options.MaxNetworkRules)
            {
                throw new StoreLimitException($"the store holds {snap.Networks.Count} network rules, the most Store:MaxNetworkRules allows");
            }

            var rule = new NetworkRule(network, frozen, now);
            var key = network.ToString();
            return Commit(snap.With(networks: snap.Networks.SetItem(network, rule)), StoreChangeKind.NetworkSet, StoreCollection.Networks, key, rule);
        }
    }

    /// <summary>Removes the rule of an address block.</summary>
    /// <returns>False at once if there was no such rule; otherwise true, once the removal is durable.</returns>
    public Task<bool> RemoveNetworkRuleAsync(IPNetwork network)
    {
        lock (_gate)
        {
            var snap = Writable();
            if (!snap.Networks.ContainsKey(network))
            {
                return Task.FromResult(false);
            }

            var key = network.ToString();
            return True(Commit(snap.With(networks: snap.Networks.Remove(network)), StoreChangeKind.NetworkRemoved, StoreCollection.Networks, key, null));
        }
    }

    /// <summary>Completes when every change accepted before the call is durable.</summary>
    public Task FlushAsync()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_writer.PendingCount == 0)
            {
                return Task.CompletedTask;
            }

            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _writer.Enqueue(PendingWrite.Barrier(waiter));
            return waiter.Task;
        }
    }

    /// <summary>Stops accepting writes and waits (up to <see cref="StoreOptions.ShutdownTimeout"/>) for queued ones to be durable, then closes the file.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
        }

        _writer.Complete();
        try
        {
            await _writer.Completion.WaitAsync(_options.ShutdownTimeout, _time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _writer.Abort();
            await _writer.Completion.ConfigureAwait(false);
        }
        finally
        {
            await _lockFile.DisposeAsync().ConfigureAwait(false);
            _meter.Dispose();
        }
    }

    /// <summary>Synchronous <see cref="DisposeAsync"/>.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private StoreSnapshot Writable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _snapshot;
    }

    private Task Commit(StoreSnapshot next, StoreChangeKind kind, StoreCollection collection, string key, object? value, bool wait = true)
    {
        var waiter = wait ? new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) : null;
        _writer.Enqueue(new PendingWrite(collection, key, value, waiter));
        _snapshot = next;
        Changed?.Invoke(this, new StoreChangedEventArgs(kind, key, next));
        return waiter?.Task ?? Task.CompletedTask;
    }

    private static async Task<bool> True(Task t)
    {
        await t.ConfigureAwait(false);
        return true;
    }

    private static void CheckId(string id, string name)
    {
        ArgumentNullException.ThrowIfNull(id, name);
        if (id.Length == 0 || Encoding.UTF8.GetByteCount(id) > MaxIdBytes || id.Any(char.IsControl))
        {
            throw new ArgumentException($"an id is 1..{MaxIdBytes} UTF-8 bytes without control characters", name);
        }
    }

    private IReadOnlyDictionary<string, string> CheckAttributes(IReadOnlyDictionary<string, string> attributes)
    {
        ArgumentNullException.ThrowIfNull(attributes);
        if (attributes.Count > _options.MaxAttributes)
        {
            throw new ArgumentException($"{attributes.Count} attributes; at most {_options.MaxAttributes} (Store:MaxAttributes)", nameof(attributes));
        }

        foreach (var (k, v) in attributes)
        {
            if (string.IsNullOrEmpty(k) || Encoding.UTF8.GetByteCount(k) > MaxAttributeBytes || v is null || Encoding.UTF8.GetByteCount(v) > MaxAttributeBytes)
            {
                throw new ArgumentException($"attribute '{k}': keys are 1..{MaxAttributeBytes} UTF-8 bytes, values 0..{MaxAttributeBytes}", nameof(attributes));
            }
        }

        return attributes.Count == 0 ? Attributes.Empty : Attributes.Freeze(attributes);
    }

    // Refuse a file that is not LiteDB before LiteDB sees it: LiteDB would "repair" (truncate) a file whose length
    // is not a whole number of pages, which must not happen to someone else's file.
    private static void CheckHeader(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists || info.Length == 0)
        {
            return;
        }

        Span<byte> header = stackalloc byte[64];
        using (var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None))
        {
            if (f.Length < 8192 || f.ReadAtLeast(header, header.Length, throwOnEndOfStream: false) < header.Length)
            {
                throw new InvalidDataException($"it is not a LiteDB file ({info.Length} bytes, shorter than one page)");
            }
        }

        if (!header.Slice(32, 27).SequenceEqual("** This is a LiteDB file **"u8))
        {
            throw new InvalidDataException("it is not a LiteDB file (no LiteDB header)");
        }

        if (header[59] != 8)
        {
            throw new InvalidDataException($"it is a LiteDB file of format {header[59]}, not 8 (LiteDB 5)");
        }
    }

    private static string Describe(Exception ex) => ex switch
    {
        InvalidDataException => OneLine(ex.Message),
        LiteException => "it is unreadable or corrupt (LiteDB: " + OneLine(ex.Message) + ")",
        UnauthorizedAccessException => "permission denied: " + OneLine(ex.Message),
        IOException => "I/O error: " + OneLine(ex.Message),
        _ => $"it is unreadable or corrupt ({ex.GetType().Name}: {OneLine(ex.Message)})",
    };

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();

    private static void TryDispose(LiteDatabase? db)
    {
        try
        {
            db?.Dispose();
        }
        catch (Exception ex) when (ex is IOException or LiteException or ObjectDisposedException)
        {
        }
    }
}

/// <summary>Names shared by the store metrics.</summary>
public static class StoreMetrics
{
    /// <summary>The meter of the store.</summary>
    public const string MeterName = "Vip.Store";
}
