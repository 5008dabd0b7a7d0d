namespace Vip.Tickets;

/// <summary>
/// A bounded map whose entries vanish at their expiry time: the EXPECT table of a
/// <see cref="TicketVerifier"/>. Not thread-safe (the verifier locks around it). Allocates nothing once its
/// dictionary and heap have grown to their working size.
/// </summary>
/// <remarks>
/// When full, the entry that expires first is dropped early and <see cref="Floor"/> rises to its expiry, so the
/// caller can refuse anything that expires at or before the floor: it could have been among the forgotten.
/// </remarks>
internal sealed class ExpiringTable<TKey, TValue>
    where TKey : notnull
{
    private readonly Dictionary<TKey, (long Expires, TValue Value)> _entries;
    private readonly PriorityQueue<TKey, long> _byExpiry;
    private readonly int _capacity;

    public ExpiringTable(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
        _entries = new Dictionary<TKey, (long, TValue)>(Math.Min(capacity, 4096));
        _byExpiry = new PriorityQueue<TKey, long>(Math.Min(capacity, 4096));
    }

    public int Count => _entries.Count;

    /// <summary>Highest expiry of an entry dropped before its time; long.MinValue while none was.</summary>
    public long Floor { get; private set; } = long.MinValue;

    /// <summary>Dropped-early entries since creation.</summary>
    public long Evicted { get; private set; }

    public bool TryGet(TKey key, out TValue value)
    {
        if (_entries.TryGetValue(key, out var e))
        {
            value = e.Value;
            return true;
        }

        value = default!;
        return false;
    }

    public bool Contains(TKey key) => _entries.ContainsKey(key);

    public bool Remove(TKey key) => _entries.Remove(key);

    /// <summary>Adds or replaces an entry that lives until <paramref name="expires"/> (inclusive).</summary>
    public void Set(TKey key, TValue value, long expires, long now)
    {
        Purge(now);
        if (!_entries.ContainsKey(key))
        {
            while (_entries.Count >= _capacity && EvictEarliest())
            {
            }
        }

        _entries[key] = (expires, value);
        _byExpiry.Enqueue(key, expires);
    }

    /// <summary>Removes entries whose expiry is before <paramref name="now"/>.</summary>
    public void Purge(long now)
    {
        while (_byExpiry.TryPeek(out var key, out var expires) && expires < now)
        {
            _byExpiry.Dequeue();
            if (_entries.TryGetValue(key, out var e) && e.Expires <= expires)
            {
                _entries.Remove(key);
            }
        }

        // Heap entries of removed or re-set keys linger until their time; rebuild if they pile up.
        if (_byExpiry.Count > 2 * _capacity + 1024)
        {
            _byExpiry.Clear();
            foreach (var (k, e) in _entries)
            {
                _byExpiry.Enqueue(k, e.Expires);
            }
        }
    }

    private bool EvictEarliest()
    {
        while (_byExpiry.TryDequeue(out var key, out var expires))
        {
            if (_entries.TryGetValue(key, out var e) && e.Expires == expires)
            {
                _entries.Remove(key);
                Floor = Math.Max(Floor, expires);
                Evicted++;
                return true;
            }
        }

        return false;
    }
}
