using System.Collections.Concurrent;

namespace Vip.Agent;

/// <summary>
/// The EXPECT notices an agent has received, by ticket id, until they expire: bounded, and awaitable, because a
/// client may arrive a moment before the notice about it (they travel on different connections).
/// </summary>
internal sealed class ExpectBook
{
    private readonly ConcurrentDictionary<ulong, ExpectNotice> _notices = new();
    private readonly ConcurrentDictionary<ulong, TaskCompletionSource<ExpectNotice>> _waiters = new();
    private readonly int _max;
    private readonly TimeProvider _time;
    private long _dropped;
    private int _count;       // kept beside the dictionary: ConcurrentDictionary.Count takes every lock
    private int _waiting;     // clients waiting for a notice; most notices arrive with nobody waiting
    private long _lastFullPurge;

    public ExpectBook(int max, TimeProvider time)
    {
        _max = max;
        _time = time;
    }

    public int Count => Volatile.Read(ref _count);

    /// <summary>Notices refused because the book was full of unexpired notices.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Records a notice; false when the book is full (after purging the expired ones).</summary>
    public bool Add(ExpectNotice notice)
    {
        if (Volatile.Read(ref _count) >= _max && !PurgeWhenFull())
        {
            Interlocked.Increment(ref _dropped);
            return false;
        }

        if (_notices.TryAdd(notice.TicketId, notice))
        {
            Interlocked.Increment(ref _count);
        }
        else
        {
            _notices[notice.TicketId] = notice; // the same ticket again: the newer notice wins
        }

        // A full fence (not a plain read): a waiter that registers after this check finds the notice itself.
        if (Interlocked.CompareExchange(ref _waiting, 0, 0) > 0 && _waiters.TryRemove(notice.TicketId, out var waiter))
        {
            waiter.TrySetResult(notice);
        }

        return true;
    }

    // A full book is scanned at most every 100 ms, not on every notice: under a flood of unclaimed notices a scan
    // per notice would cost O(book) each. True when there is room after it.
    private bool PurgeWhenFull()
    {
        var now = _time.GetTimestamp();
        var last = Interlocked.Read(ref _lastFullPurge);
        if ((last == 0 || _time.GetElapsedTime(last, now) >= TimeSpan.FromMilliseconds(100))
            && Interlocked.CompareExchange(ref _lastFullPurge, now, last) == last)
        {
            Purge();
        }

        return Volatile.Read(ref _count) < _max;
    }

    public bool TryGet(ulong ticketId, out ExpectNotice notice) => _notices.TryGetValue(ticketId, out notice!);

    /// <summary>The notice for <paramref name="ticketId"/>, waiting up to <paramref name="wait"/> for it to arrive; null if it does not.</summary>
    public async ValueTask<ExpectNotice?> WaitAsync(ulong ticketId, TimeSpan wait, CancellationToken cancellationToken)
    {
        if (_notices.TryGetValue(ticketId, out var notice))
        {
            return notice;
        }

        Interlocked.Increment(ref _waiting);
        try
        {
            var tcs = _waiters.GetOrAdd(ticketId, static _ => new TaskCompletionSource<ExpectNotice>(TaskCreationOptions.RunContinuationsAsynchronously));
            // The notice may have landed between the lookup and the registration.
            if (_notices.TryGetValue(ticketId, out notice))
            {
                _waiters.TryRemove(ticketId, out _);
                return notice;
            }

            try
            {
                return await tcs.Task.WaitAsync(wait, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                _waiters.TryRemove(new KeyValuePair<ulong, TaskCompletionSource<ExpectNotice>>(ticketId, tcs));
                return null;
            }
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
    }

    /// <summary>Forgets the notice of a ticket that was used.</summary>
    public void Remove(ulong ticketId)
    {
        if (_notices.TryRemove(ticketId, out _))
        {
            Interlocked.Decrement(ref _count);
        }
    }

    /// <summary>Drops notices whose ticket has expired (plus <paramref name="skew"/>).</summary>
    public int Purge(TimeSpan skew = default)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds() - (long)skew.TotalMilliseconds;
        var removed = 0;
        foreach (var (id, notice) in _notices)
        {
            if (notice.ExpiresUnixMs < now && _notices.TryRemove(id, out _))
            {
                Interlocked.Decrement(ref _count);
                removed++;
            }
        }

        return removed;
    }
}
