using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Threading.Channels;
using LiteDB;
using Microsoft.Extensions.Logging;

namespace Vip.Store;

/// <summary>A change accepted into memory and queued for the disk: a whole record to upsert, or a key to delete.</summary>
internal sealed class PendingWrite(StoreCollection collection, string key, object? value, TaskCompletionSource? waiter)
{
    public StoreCollection Collection { get; } = collection;
    public string Key { get; } = key;
    public object? Value { get; } = value;            // null: delete
    public TaskCompletionSource? Waiter { get; } = waiter;

    /// <summary>Not a change: its waiter completes once every write queued before it is durable.</summary>
    public bool IsBarrier { get; private init; }

    public static PendingWrite Barrier(TaskCompletionSource waiter) =>
        new(StoreCollection.Clients, "", null, waiter) { IsBarrier = true };
}

/// <summary>Where the fault-injection hook of the tests is called.</summary>
internal enum StoreFaultPoint
{
    /// <summary>Before the database is (re)opened after a failure.</summary>
    Reopen,

    /// <summary>Inside the transaction, after the changes and before Commit.</summary>
    BeforeCommit,

    /// <summary>After Commit, before the checkpoint that makes the batch durable.</summary>
    BeforeCheckpoint,
}

/// <summary>
/// The one writer of a store's LiteDB file. Accepted writes arrive through an unbounded channel; the writer merges
/// them by key (latest record wins), writes up to <see cref="StoreOptions.MaxBatchSize"/> keys per LiteDB
/// transaction, commits, and checkpoints — the checkpoint copies the log into the data file and fsyncs it — before it
/// completes the writes' tasks. A failure keeps every write queued, closes the database, waits (exponential
/// backoff), reopens it and tries again; nothing accepted is dropped while the process lives.
/// </summary>
internal sealed class StoreWriter
{
    private readonly Channel<PendingWrite> _channel = Channel.CreateUnbounded<PendingWrite>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<(StoreCollection, string), Entry> _pending = [];
    private readonly Queue<Entry> _order = new();     // first come, first written; merged writes keep their place
    private readonly List<Entry> _chunk = [];
    private readonly string _path;
    private readonly StoreOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _abort = new();
    private readonly Counter<long> _written;
    private readonly Counter<long> _failures;
    private readonly Histogram<double> _batchDuration;
    private LiteDatabase? _db;
    private StorePages? _pages;                       // what the file holds, page by page; null after a failure until re-read
    private readonly HashSet<(StoreCollection Collection, int Page)> _touched = [];
    private long _pendingCount;
    private Task _run = Task.CompletedTask;

    public StoreWriter(string path, LiteDatabase db, StorePages pages, StoreOptions options, ILogger logger, TimeProvider time, Meter meter)
    {
        _path = path;
        _db = db;
        _pages = pages;
        _options = options;
        _logger = logger;
        _time = time;
        _written = meter.CreateCounter<long>("vip.store.writes", "{write}", "Changes made durable (after merging changes to one key).");
        _failures = meter.CreateCounter<long>("vip.store.write_failures", "{failure}", "Write batches that failed and will be retried.");
        _batchDuration = meter.CreateHistogram<double>("vip.store.batch.duration", "s", "Time to commit and checkpoint one batch.");
    }

    /// <summary>Accepted writes not yet durable.</summary>
    public long PendingCount => Interlocked.Read(ref _pendingCount);

    /// <summary>Consecutive failed attempts of the current batch (0 while writing works).</summary>
    public int FailedAttempts { get; private set; }

    /// <summary>Test hook: called at each <see cref="StoreFaultPoint"/>; throw to simulate a failing disk.</summary>
    public Action<StoreFaultPoint>? Faults { get; set; }

    public Task Completion => _run;

    public void Start() => _run = Task.Run(RunAsync);

    public void Enqueue(PendingWrite write)
    {
        var counted = !write.IsBarrier;
        if (counted)
        {
            Interlocked.Increment(ref _pendingCount);
        }

        if (!_channel.Writer.TryWrite(write))
        {
            if (counted)
            {
                Interlocked.Decrement(ref _pendingCount);
            }

            throw new ObjectDisposedException(nameof(VipStore));
        }
    }

    /// <summary>No more writes; the writer stops once everything queued is durable.</summary>
    public void Complete() => _channel.Writer.TryComplete();

    /// <summary>Stop retrying now (shutdown timeout): queued writes are failed.</summary>
    public void Abort() => _abort.Cancel();

    private async Task RunAsync()
    {
        try
        {
            while (true)
            {
                DrainAvailable();
                while (_order.TryPeek(out var head) && head.IsBarrier)
                {
                    _order.Dequeue().Complete();
                }

                if (_order.Count == 0)
                {
                    if (!await _channel.Reader.WaitToReadAsync(_abort.Token).ConfigureAwait(false))
                    {
                        break;
                    }

                    continue;
                }

                // Up to MaxBatchSize changes from the head; barriers among them complete with the chunk.
                _chunk.Clear();
                var taken = 0;
                foreach (var entry in _order)
                {
                    if (!entry.IsBarrier && _chunk.Count == _options.MaxBatchSize)
                    {
                        break;
                    }

                    taken++;
                    if (!entry.IsBarrier)
                    {
                        _chunk.Add(entry);
                    }
                }

                try
                {
                    var started = Stopwatch.GetTimestamp();
                    Persist(_chunk);
                    _batchDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    await BackOffAsync(ex).ConfigureAwait(false);
                    continue;
                }

                if (FailedAttempts > 0)
                {
                    StoreLog.WriteRecovered(_logger, _path, FailedAttempts);
                    FailedAttempts = 0;
                }

                long done = 0;
                for (var i = 0; i < taken; i++)
                {
                    var entry = _order.Dequeue();
                    if (!entry.IsBarrier)
                    {
                        _pending.Remove((entry.Collection, entry.Key));
                        done += entry.Count;
                    }

                    entry.Complete();
                }

                _written.Add(_chunk.Count);
                Interlocked.Add(ref _pendingCount, -done);
            }
        }
        catch (OperationCanceledException) when (_abort.IsCancellationRequested)
        {
            FailEverything();
        }
        finally
        {
            CloseDatabase();
        }
    }

    private void DrainAvailable()
    {
        while (_channel.Reader.TryRead(out var w))
        {
            if (w.IsBarrier)
            {
                _order.Enqueue(new Entry(w));
                continue;
            }

            var key = (w.Collection, w.Key);
            if (_pending.TryGetValue(key, out var entry))
            {
                entry.Merge(w);
            }
            else
            {
                entry = new Entry(w);
                _pending.Add(key, entry);
                _order.Enqueue(entry);
            }
        }
    }

    // Synchronous on purpose: LiteDB binds a transaction to the thread that began it.
    private void Persist(List<Entry> chunk)
    {
        if (_db is null)
        {
            Faults?.Invoke(StoreFaultPoint.Reopen);
            _db = StoreDocuments.OpenDatabase(_path);
        }

        var db = _db;

        // After a failed batch the map of pages may be ahead of the file (or the file ahead of it, when the commit
        // went through and the checkpoint failed): read it again from what the file holds now.
        _pages ??= ReadPages(db);
        var pages = _pages;
        if (!db.BeginTrans())
        {
            throw new InvalidOperationException("a LiteDB transaction is already open on the writer thread");
        }

        try
        {
            // Apply the chunk to the map of pages, then write each page it touched once.
            _touched.Clear();
            foreach (var entry in chunk)
            {
                var book = pages[entry.Collection];
                var page = entry.Value is null ? book.Remove(entry.Key) : book.Set(entry.Key, entry.Value);
                if (page >= 0)
                {
                    _touched.Add((entry.Collection, page));
                }
            }

            foreach (var (collection, page) in _touched)
            {
                var col = db.GetCollection(StoreDocuments.CollectionName(collection));
                if (pages[collection].RecordsOf(page) is { } records)
                {
                    col.Upsert(StoreDocuments.PageDocument(page, records));
                }
                else
                {
                    col.Delete(page);
                }
            }

            Faults?.Invoke(StoreFaultPoint.BeforeCommit);
            db.Commit();
        }
        catch
        {
            _pages = null;
            TryRollback(db);
            throw;
        }

        Faults?.Invoke(StoreFaultPoint.BeforeCheckpoint);

        // The durability point: copies the log pages into the data file, fsyncs it, and empties the log.
        db.Checkpoint();
    }

    private async Task BackOffAsync(Exception ex)
    {
        FailedAttempts++;
        _failures.Add(1);
        CloseDatabase(); // LiteDB closes its engine on an I/O error; start again from the files
        var delay = TimeSpan.FromTicks(Math.Min(
            _options.RetryMaxDelay.Ticks,
            _options.RetryInitialDelay.Ticks * (1L << Math.Min(FailedAttempts - 1, 20))));
        if (FailedAttempts == 1)
        {
            StoreLog.WriteFailed(_logger, ex, _path, FailedAttempts, PendingCount, (long)delay.TotalMilliseconds);
        }
        else
        {
            StoreLog.WriteStillFailing(_logger, _path, FailedAttempts, ex.Message, PendingCount, (long)delay.TotalMilliseconds);
        }

        await Task.Delay(delay, _time, _abort.Token).ConfigureAwait(false);
    }

    private void FailEverything()
    {
        DrainAvailable();
        long lost = 0;
        foreach (var entry in _order)
        {
            lost += entry.IsBarrier ? 0 : entry.Count;
            entry.Fail(new StoreWriteException($"store '{_path}' shut down before this change could be saved"));
        }

        _order.Clear();
        _pending.Clear();
        Interlocked.Add(ref _pendingCount, -lost);
        if (lost > 0)
        {
            StoreLog.ShutdownLostWrites(_logger, _path, lost);
        }
    }

    private static StorePages ReadPages(LiteDatabase db)
    {
        StoreDocuments.Load(db, out var pages);
        return pages;
    }

    private void CloseDatabase()
    {
        var db = _db;
        _db = null;
        _pages = null;
        try
        {
            db?.Dispose();
        }
        catch (Exception ex) when (ex is IOException or LiteException or ObjectDisposedException or UnauthorizedAccessException)
        {
            // A failing disk may fail the close too; the next attempt reopens from the files.
        }
    }

    private static void TryRollback(LiteDatabase db)
    {
        try
        {
            db.Rollback();
        }
        catch (Exception ex) when (ex is IOException or LiteException or ObjectDisposedException)
        {
            // The engine may already be closed by the error; the database is reopened anyway.
        }
    }

    /// <summary>All queued writes to one key, merged: the latest record, every waiter, how many writes.</summary>
    private sealed class Entry(PendingWrite first)
    {
        private List<TaskCompletionSource>? _moreWaiters;
        private TaskCompletionSource? _waiter = first.Waiter;

        public bool IsBarrier { get; } = first.IsBarrier;
        public StoreCollection Collection { get; } = first.Collection;
        public string Key { get; } = first.Key;
        public object? Value { get; private set; } = first.Value;
        public long Count { get; private set; } = 1;

        public void Merge(PendingWrite w)
        {
            Value = w.Value;
            Count++;
            if (w.Waiter is null)
            {
                return;
            }

            if (_waiter is null)
            {
                _waiter = w.Waiter;
            }
            else
            {
                (_moreWaiters ??= []).Add(w.Waiter);
            }
        }

        public void Complete()
        {
            _waiter?.TrySetResult();
            _moreWaiters?.ForEach(static w => w.TrySetResult());
        }

        public void Fail(Exception ex)
        {
            _waiter?.TrySetException(ex);
            _moreWaiters?.ForEach(w => w.TrySetException(ex));
        }
    }
}
