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

    public ExpectBook(int max, TimeProvider time)
    {
        _max = max;
        _time = time;
    }

    public int Count => _notices.Count;

    /// <summary>Notices refused because the book was full of unexpired notices.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Records a notice; false when the book is full (after purging the expired ones).</summary>
    public bool Add(ExpectNotice notice)
    {
        if (_notices.Count >= _max)
        {
            Purge();
            if (_notices.Count >= _max)
            {
                Interlocked.Increment(ref _dropped);
                return false;
            }
        }

        _notices[notice.TicketId] = notice;
        if (_waiters.TryRemove(notice.TicketId, out var waiter))
        {
            waiter.TrySetResult(notice);
        }

        return true;
    }

    public bool TryGet(ulong ticketId, out ExpectNotice notice) => _notices.TryGetValue(ticketId, out notice!);

    /// <summary>The notice for <paramref name="ticketId"/>, waiting up to <paramref name="wait"/> for it to arrive; null if it does not.</summary>
    public async ValueTask<ExpectNotice?> WaitAsync(ulong ticketId, TimeSpan wait, CancellationToken cancellationToken)
    {
        if (_notices.TryGetValue(ticketId, out var notice))
        {
            return notice;
        }

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

    /// <summary>Forgets the notice of a ticket that was used.</summary>
    public void Remove(ulong ticketId) => _notices.TryRemove(ticketId, out _);

    /// <summary>Drops notices whose ticket has expired (plus <paramref name="skew"/>).</summary>
    public int Purge(TimeSpan skew = default)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds() - (long)skew.TotalMilliseconds;
        var removed = 0;
        foreach (var (id, notice) in _notices)
        {
            if (notice.ExpiresUnixMs < now && _notices.TryRemove(id, out _))
            {
                removed++;
            }
        }

        return removed;
    }
}
