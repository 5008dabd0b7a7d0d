using System.Numerics;

namespace Vip.Tickets;

/// <summary>
/// The tickets a <see cref="TicketVerifier"/> accepted, each remembered until its expiry (plus skew): the
/// single-use check. Bounded; not thread-safe (the verifier locks around it); allocates nothing once grown to its
/// working size.
/// </summary>
/// <remarks>
/// <para>A set of ticket keys (MAC prefixes) answers "seen?"; a timing wheel of 128 ms ticks, one linked list of
/// entries per tick, says what to forget when: adding, forgetting and evicting are O(1) (a priority queue was
/// O(log n) with a cache miss per level and cost more than an HMAC). Entries are forgotten within 128 ms after
/// their expiry.</para>
/// <para>When full, an entry of the earliest non-empty tick is dropped early and <see cref="Floor"/> rises to its
/// expiry, so the caller can refuse anything that expires at or before the floor: it could have been among the
/// forgotten.</para>
/// </remarks>
internal sealed class ReplayCache
{
    private const int TickShift = 7; // 128 ms
    private const int None = -1;

    private readonly HashSet<UInt128> _keys;
    private readonly int _capacity;
    private readonly int[] _wheel;      // tick -> first entry, None if empty
    private readonly long _wheelMask;
    private Entry[] _entries;           // one 32-byte record per entry: one cache line touched, not three
    private int _used;                  // entries ever handed out (the rest of the arrays is untouched)
    private int _free = None;           // free list of forgotten entries
    private long _cursor = long.MinValue; // every tick before this one is empty

    /// <param name="capacity">Most entries held.</param>
    /// <param name="horizonMs">Longest time from "now" to an entry's expiry that <see cref="Add"/> will be given.</param>
    public ReplayCache(int capacity, long horizonMs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(horizonMs);
        _capacity = capacity;
        // The wheel spans more than the horizon, so two live entries never share a slot from different turns.
        var ticks = (horizonMs >> TickShift) + 2;
        var slots = (int)Math.Min(1L << 30, (long)BitOperations.RoundUpToPowerOf2((ulong)ticks));
        _wheel = new int[slots];
        Array.Fill(_wheel, None);
        _wheelMask = slots - 1;
        var initial = Math.Min(capacity, 4096);
        _keys = new HashSet<UInt128>(initial);
        _entries = new Entry[initial];
    }

    /// <summary>Entries held now.</summary>
    public int Count => _keys.Count;

    /// <summary>Highest expiry of an entry dropped before its time; long.MinValue while none was.</summary>
    public long Floor { get; private set; } = long.MinValue;

    /// <summary>Dropped-early entries since creation.</summary>
    public long Evicted { get; private set; }

    /// <summary>True if <paramref name="key"/> is held (it may have expired up to one tick ago).</summary>
    public bool Contains(UInt128 key) => _keys.Contains(key);

    /// <summary>Forgets every entry whose tick lies wholly before <paramref name="now"/>.</summary>
    public void Purge(long now)
    {
        var target = now >> TickShift;
        if (_cursor == long.MinValue || target <= _cursor)
        {
            _cursor = Math.Max(_cursor, target);
            return;
        }

        // Past a whole turn every slot is due; never walk more than one turn.
        var steps = Math.Min(target - _cursor, _wheel.Length);
        for (long i = 0; i < steps; i++)
        {
            ForgetSlot((int)((_cursor + i) & _wheelMask));
        }

        _cursor = target;
    }

    /// <summary>
    /// Remembers <paramref name="key"/> (not held: the caller checked <see cref="Contains"/>) until
    /// <paramref name="expires"/>, which must lie in [<paramref name="now"/>, now + horizon].
    /// </summary>
    public void Add(UInt128 key, long expires, long now)
    {
        Purge(now);
        if (_keys.Count >= _capacity)
        {
            EvictEarliest();
        }

        if (!_keys.Add(key))
        {
            return;
        }

        var e = TakeEntry();
        var slot = (int)((expires >> TickShift) & _wheelMask);
        _entries[e] = new Entry { Key = key, Expires = expires, Next = _wheel[slot] };
        _wheel[slot] = e;
    }

    private int TakeEntry()
    {
        if (_free != None)
        {
            var e = _free;
            _free = _entries[e].Next;
            return e;
        }

        if (_used == _entries.Length)
        {
            Array.Resize(ref _entries, (int)Math.Min(_capacity, 2L * _entries.Length));
        }

        return _used++;
    }

    private void ForgetSlot(int slot)
    {
        var e = _wheel[slot];
        _wheel[slot] = None;
        while (e != None)
        {
            ref var entry = ref _entries[e];
            var next = entry.Next;
            _keys.Remove(entry.Key);
            entry.Next = _free;
            _free = e;
            e = next;
        }
    }

    private void EvictEarliest()
    {
        // The cache is full, so some slot at or after the cursor holds an entry; one turn finds it.
        for (long i = 0; i < _wheel.Length; i++)
        {
            var slot = (int)((_cursor + i) & _wheelMask);
            var e = _wheel[slot];
            if (e == None)
            {
                continue;
            }

            ref var entry = ref _entries[e];
            _wheel[slot] = entry.Next;
            _keys.Remove(entry.Key);
            Floor = Math.Max(Floor, entry.Expires);
            Evicted++;
            entry.Next = _free;
            _free = e;
            return;
        }
    }

    private struct Entry
    {
        public UInt128 Key;
        public long Expires;
        public int Next; // next entry in the same tick, or in the free list
    }
}
