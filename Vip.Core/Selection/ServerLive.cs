namespace Vip.Selection;

/// <summary>
/// One app server's live counters (the truth), by slot in a <see cref="LiveTable"/>: written in place by
/// heartbeats (volatile stores) and by ticket counting (Interlocked); each field is consistent on its own.
/// A walk over the candidates does not read them: it reads each server's <see cref="RankWord"/>, which every writer
/// re-derives; only the few servers a decision keeps are checked here (exact expiry).
/// </summary>
internal struct LiveCounters
{
    public long LastHeardTimestamp;   // TimeProvider.GetTimestamp() of the last heartbeat/registration
    public ulong LoadFactor;          // ⌊2^32 ÷ Capacity⌋: the load fraction without a division
    public long StaleMark;            // LastHeardTimestamp + 1 when the sweep found that heartbeat expired
    public int State;                 // ServerState
    public int Active;                // active tasks of the last heartbeat
    public int Issued;                // tickets issued since the last heartbeat (Interlocked)
    public int Capacity;
}

/// <summary>
/// What a decision reads per candidate, packed in one 64-bit word per server so the candidate walk touches
/// 8 bytes (eight servers' words to a cache line, against two servers' 32-byte counters) and reads them atomically:
/// the high half is the last heartbeat in coarse time units (<see cref="LiveTable.HeardShift"/>), the low half
/// the load key — (active + issued) ÷ capacity as a 32-bit fraction, or <see cref="Full"/>, or <see cref="Down"/>.
/// </summary>
internal static class RankWord
{
    /// <summary>Up, but active + issued has reached the capacity.</summary>
    public const uint Full = 0xFFFF_FFFE;

    /// <summary>Not a candidate whatever the time: not heard from yet, draining, removed, or found expired by the sweep.</summary>
    public const uint Down = 0xFFFF_FFFF;

    /// <summary>The word of a slot nobody has written yet.</summary>
    public const ulong Unused = Down;

    /// <summary>A timestamp in the coarse units the word keeps (wrapping; compare with <see cref="IsExpired"/>).</summary>
    public static uint Heard(long timestamp, int shift) => (uint)(timestamp >> shift);

    /// <summary>
    /// Whether the word's heartbeat is before <paramref name="since"/> (coarse, wrapping: right for ages under
    /// 2^31 units, and the sweep marks every server older than that as <see cref="Down"/> long before). Equal
    /// units count as heard: the exact check of the short list settles them.
    /// </summary>
    public static bool IsExpired(ulong word, uint since) => (int)((uint)(word >> 32) - since) < 0;

    /// <summary>The load key of a word.</summary>
    public static uint Key(ulong word) => (uint)word;

    /// <summary>Derives the word from the counters (and the removed flag).</summary>
    public static ulong Compose(ref LiveCounters c, bool removed, int shift)
    {
        long heard = Volatile.Read(ref c.LastHeardTimestamp);
        uint key;
        if (removed || Volatile.Read(ref c.State) != (int)ServerState.Up || Volatile.Read(ref c.StaleMark) == heard + 1)
        {
            key = Down;
        }
        else
        {
            int used = Volatile.Read(ref c.Active) + Volatile.Read(ref c.Issued);
            int capacity = Volatile.Read(ref c.Capacity);

            // used < capacity, so used × ⌊2^32 ÷ capacity⌋ < 2^32: the load as a fraction, without a division.
            key = used >= capacity ? Full : Math.Min((uint)((ulong)(uint)used * Volatile.Read(ref c.LoadFactor)), Full - 1);
        }

        return ((ulong)Heard(heard, shift) << 32) | key;
    }
}

/// <summary>
/// The engine's table of <see cref="LiveCounters"/> and <see cref="RankWord"/>s, one slot per registered server.
/// Slots are stable for a server's lifetime, so snapshots never copy counters and a heartbeat writes one place.
/// Storage grows in chunks that never move (a decision may read a chunk while the table grows); a freed slot is
/// reused only after a snapshot without its server has been published. Mutated under the engine's registration lock.
/// </summary>
internal sealed class LiveTable
{
    public const int ChunkShift = 10;
    public const int ChunkSize = 1 << ChunkShift;
    public const int ChunkMask = ChunkSize - 1;

    private readonly PriorityQueue<int, int> _free = new();
    private readonly List<int> _pending = [];
    private LiveCounters[][] _chunks = [];
    private ulong[][] _ranks = [];
    private int _next;

    /// <summary>Creates a table whose rank words keep heartbeat times in units of about a millisecond or finer.</summary>
    /// <param name="timestampFrequency">The engine clock's <see cref="TimeProvider.TimestampFrequency"/>.</param>
    public LiveTable(long timestampFrequency)
    {
        // The largest power of two of clock ticks that is at most a millisecond: 2^31 units is at least 24 days.
        HeardShift = Math.Max(0, System.Numerics.BitOperations.Log2((ulong)Math.Max(1, timestampFrequency / 1000)));
    }

    /// <summary>Clock ticks per rank-word time unit, as a shift.</summary>
    public int HeardShift { get; }

    /// <summary>The slots whose rank word changed, in order.</summary>
    public ChangeLog Log { get; } = new();

    /// <summary>The rank-word chunks as they stand (a snapshot keeps the array it was built with; it covers all of its slots).</summary>
    public ulong[][] Ranks => Volatile.Read(ref _ranks);

    /// <summary>Takes a slot, the lowest free one first, and clears its counters.</summary>
    public ServerLive Take(ulong idHash)
    {
        int slot;
        if (!_free.TryDequeue(out slot, out _))
        {
            slot = _next++;
            if ((slot >> ChunkShift) == _chunks.Length)
            {
                LiveCounters[][] grown = new LiveCounters[_chunks.Length + 1][];
                Array.Copy(_chunks, grown, _chunks.Length);
                grown[^1] = new LiveCounters[ChunkSize];
                ulong[][] ranks = new ulong[_ranks.Length + 1][];
                Array.Copy(_ranks, ranks, _ranks.Length);
                ranks[^1] = new ulong[ChunkSize];
                Array.Fill(ranks[^1], RankWord.Unused);
                _chunks = grown;
                Volatile.Write(ref _ranks, ranks);
            }
        }

        int offset = slot & ChunkMask;
        LiveCounters[] chunk = _chunks[slot >> ChunkShift];
        ulong[] rankChunk = _ranks[slot >> ChunkShift];
        chunk[offset] = default;
        Volatile.Write(ref rankChunk[offset], RankWord.Unused);
        return new ServerLive(slot, chunk, rankChunk, offset, idHash, this);
    }

    /// <summary>Marks a removed server's slot for reuse once the next snapshot is published.</summary>
    public void Release(ServerLive live) => _pending.Add(live.Slot);

    /// <summary>Called after a snapshot without the released servers has been published: their slots become free.</summary>
    public void Published()
    {
        foreach (int slot in _pending)
        {
            _free.Enqueue(slot, slot);
        }

        _pending.Clear();
    }
}

/// <summary>
/// One app server's live figures, shared by every snapshot that holds it, so heartbeats and ticket counts never
/// rebuild a <see cref="ServerSet"/>. The counters are in the engine's <see cref="LiveTable"/> at <see cref="Slot"/>,
/// with the rank word decisions read; the rest (for display and for the policies that need them) are here.
/// </summary>
internal sealed class ServerLive
{
    private readonly LiveCounters[] _chunk;
    private readonly ulong[] _ranks;
    private readonly int _offset;
    private readonly LiveTable _table;

    public ServerLive(int slot, LiveCounters[] chunk, ulong[] ranks, int offset, ulong idHash, LiveTable table)
    {
        Slot = slot;
        _chunk = chunk;
        _ranks = ranks;
        _offset = offset;
        _table = table;
        IdHash = idHash;
    }

    /// <summary>Where the counters are in the <see cref="LiveTable"/>.</summary>
    public int Slot { get; }

    /// <summary>Stable hash of the id, for rendezvous hashing.</summary>
    public ulong IdHash { get; }

    public long LastHeardUtcTicks;    // the moment of LastHeardTimestamp in UTC, for display
    public volatile int LoadPermille;
    public long Pass;                 // weighted round robin: virtual finish time (wrapping arithmetic)
    public long Stride;               // weighted round robin: 2^32 / weight

    /// <summary>Deregistered: its slot may be reused by another server, so snapshots still holding it must not choose it.</summary>
    public bool Removed
    {
        get => Volatile.Read(ref _removed);
        set
        {
            Volatile.Write(ref _removed, value);
            Refresh();
        }
    }

    private bool _removed;

    public ref LiveCounters Counters => ref _chunk[_offset];

    /// <summary>The word decisions read (see <see cref="RankWord"/>).</summary>
    public ulong Rank => Volatile.Read(ref _ranks[_offset]);

    public int State
    {
        get => Removed ? (int)ServerState.Unknown : Volatile.Read(ref Counters.State);
        set
        {
            Volatile.Write(ref Counters.State, value);
            Refresh();
        }
    }

    public int Active => Removed ? 0 : Volatile.Read(ref Counters.Active);

    public int Issued => Removed ? 0 : Volatile.Read(ref Counters.Issued);

    public int Capacity => Volatile.Read(ref Counters.Capacity);

    public long LastHeardTimestamp => Volatile.Read(ref Counters.LastHeardTimestamp);

    public void SetCapacity(int capacity, int weight)
    {
        ref LiveCounters c = ref Counters;
        Volatile.Write(ref c.LoadFactor, (1UL << 32) / (ulong)capacity);
        Volatile.Write(ref c.Capacity, capacity);
        Volatile.Write(ref Stride, (1L << 32) / Math.Max(1, weight));
        Refresh();
    }

    public void MarkHeard(ServerState state, long timestamp, long utcTicks)
    {
        ref LiveCounters c = ref Counters;
        Volatile.Write(ref LastHeardUtcTicks, utcTicks);
        Volatile.Write(ref c.LastHeardTimestamp, timestamp);
        Volatile.Write(ref c.State, (int)state);
        Refresh();
    }

    /// <summary>A heartbeat's figures: active tasks, and the issued count starts again from zero.</summary>
    public void SetActive(int active)
    {
        ref LiveCounters c = ref Counters;
        Volatile.Write(ref c.Active, active);
        Interlocked.Exchange(ref c.Issued, 0);
        Refresh();
    }

    /// <summary>Counts one issued ticket.</summary>
    public void Issue()
    {
        Interlocked.Increment(ref Counters.Issued);
        Refresh();
    }

    /// <summary>Undoes one issued ticket, never going below zero (a heartbeat may have reset the count meanwhile).</summary>
    public void Unissue()
    {
        if (Removed)
        {
            return;
        }

        ref int issued = ref Counters.Issued;
        int v = Volatile.Read(ref issued);
        while (v > 0)
        {
            int seen = Interlocked.CompareExchange(ref issued, v - 1, v);
            if (seen == v)
            {
                Refresh();
                return;
            }

            v = seen;
        }
    }

    /// <summary>
    /// Takes the server out of the candidates when its last heartbeat is before <paramref name="heardSince"/>
    /// (the sweep: keeps the rank word's wrapping clock from ever calling a long-silent server fresh again).
    /// A heartbeat that lands meanwhile changes the timestamp, so the mark no longer matches it.
    /// </summary>
    /// <returns>True when the server was marked now.</returns>
    public bool MarkStaleIfHeardBefore(long heardSince)
    {
        ref LiveCounters c = ref Counters;
        long heard = Volatile.Read(ref c.LastHeardTimestamp);
        if (heard >= heardSince || Volatile.Read(ref c.StaleMark) == heard + 1)
        {
            return false;
        }

        Volatile.Write(ref c.StaleMark, heard + 1);
        Refresh();
        return true;
    }

    /// <summary>
    /// Re-derives the rank word after any change to the counters. Writers race (heartbeats, decisions counting
    /// tickets), so each writes, then checks the counters still give what it wrote, and writes again if not:
    /// the last write is always checked against the last change, so the word ends equal to the counters. The
    /// write is an interlocked exchange (a full fence): the check must not read the counters before the write is
    /// visible, or a slower writer's stale word could land after a faster writer's check. The change then goes
    /// into the table's <see cref="ChangeLog"/>.
    /// </summary>
    private void Refresh()
    {
        ref LiveCounters c = ref Counters;
        ref ulong rank = ref _ranks[_offset];
        int shift = _table.HeardShift;
        ulong word = RankWord.Compose(ref c, Volatile.Read(ref _removed), shift);
        while (true)
        {
            Interlocked.Exchange(ref rank, word);
            ulong again = RankWord.Compose(ref c, Volatile.Read(ref _removed), shift);
            if (again == word)
            {
                break;
            }

            word = again;
        }

        _table.Log.Append(Slot);
    }
}
