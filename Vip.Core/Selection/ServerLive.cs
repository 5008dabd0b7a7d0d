namespace Vip.Selection;

/// <summary>
/// The counters a decision reads for every candidate, 32 bytes per server, stored contiguously by slot in a
/// <see cref="LiveTable"/> (a structure of arrays instead of one object per server): walking the candidates
/// touches one cache line each and no object header. Written in place by heartbeats (volatile stores) and by
/// ticket counting (Interlocked); each field is consistent on its own.
/// </summary>
internal struct LiveCounters
{
    public long LastHeardTimestamp;   // TimeProvider.GetTimestamp() of the last heartbeat/registration
    public ulong LoadFactor;          // ⌊2^32 ÷ Capacity⌋: the load fraction without a division per decision
    public int State;                 // ServerState
    public int Active;                // active tasks of the last heartbeat
    public int Issued;                // tickets issued since the last heartbeat (Interlocked)
    public int Capacity;
}

/// <summary>
/// The engine's table of <see cref="LiveCounters"/>, one slot per registered server. Slots are stable for a
/// server's lifetime, so snapshots never copy counters and a heartbeat writes one place. Storage grows in chunks
/// that never move (a decision may read a chunk while the table grows); a freed slot is reused only after a
/// snapshot without its server has been published. Mutated under the engine's registration lock.
/// </summary>
internal sealed class LiveTable
{
    public const int ChunkShift = 10;
    public const int ChunkSize = 1 << ChunkShift;
    public const int ChunkMask = ChunkSize - 1;

    private readonly PriorityQueue<int, int> _free = new();
    private readonly List<int> _pending = [];
    private LiveCounters[][] _chunks = [];
    private int _next;

    /// <summary>The chunks as they stand (a snapshot keeps the array it was built with; it covers all of its slots).</summary>
    public LiveCounters[][] Chunks => Volatile.Read(ref _chunks);

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
                Volatile.Write(ref _chunks, grown);
            }
        }

        LiveCounters[] chunk = _chunks[slot >> ChunkShift];
        chunk[slot & ChunkMask] = default;
        return new ServerLive(slot, chunk, slot & ChunkMask, idHash);
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
/// rebuild a <see cref="ServerSet"/>. The counters a decision reads sit in the engine's <see cref="LiveTable"/>
/// at <see cref="Slot"/>; the rest (for display and for the policies that need them) are here.
/// </summary>
internal sealed class ServerLive
{
    private readonly LiveCounters[] _chunk;
    private readonly int _offset;

    public ServerLive(int slot, LiveCounters[] chunk, int offset, ulong idHash)
    {
        Slot = slot;
        _chunk = chunk;
        _offset = offset;
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
    public volatile bool Removed;

    public ref LiveCounters Counters => ref _chunk[_offset];

    public int State
    {
        get => Removed ? (int)ServerState.Unknown : Volatile.Read(ref Counters.State);
        set => Volatile.Write(ref Counters.State, value);
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
    }

    public void MarkHeard(ServerState state, long timestamp, long utcTicks)
    {
        ref LiveCounters c = ref Counters;
        Volatile.Write(ref LastHeardUtcTicks, utcTicks);
        Volatile.Write(ref c.LastHeardTimestamp, timestamp);
        Volatile.Write(ref c.State, (int)state);
    }

    /// <summary>A heartbeat's figures: active tasks, and the issued count starts again from zero.</summary>
    public void SetActive(int active)
    {
        ref LiveCounters c = ref Counters;
        Volatile.Write(ref c.Active, active);
        Interlocked.Exchange(ref c.Issued, 0);
    }

    /// <summary>Counts one issued ticket.</summary>
    public void Issue() => Interlocked.Increment(ref Counters.Issued);

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
                return;
            }

            v = seen;
        }
    }
}
