namespace Vip.Selection;

/// <summary>
/// The mutable counters of one app server, shared by every snapshot that holds it, so heartbeats and ticket
/// counts never rebuild a <see cref="ServerSet"/>. Written with plain volatile stores and Interlocked; readers
/// tolerate a heartbeat landing half-way (each field is consistent on its own).
/// </summary>
internal sealed class ServerLive
{
    public volatile int State;
    public long LastHeardTimestamp;   // TimeProvider.GetTimestamp() of the last heartbeat/registration
    public long LastHeardUtcTicks;    // the same moment in UTC, for display
    public volatile int LoadPermille;
    public volatile int Active;
    public int Issued;                // tickets issued since the last heartbeat (Interlocked)
    public volatile int Capacity;
    public ulong LoadFactor;          // ⌊2^32 ÷ Capacity⌋: the load fraction without a division per decision
    public long Pass;                 // weighted round robin: virtual finish time (wrapping arithmetic)
    public long Stride;               // weighted round robin: 2^32 / weight
    public ulong IdHash;              // stable hash of the id, for rendezvous hashing (set once, before publication)

    /// <summary>
    /// Hands out counters from blocks allocated back to back, so the counters of servers registered together
    /// sit next to each other in memory (the GC keeps allocation order when it compacts) and a decision walks
    /// them with few cache misses. Called under the engine's registration lock.
    /// </summary>
    internal sealed class Slab
    {
        private const int BlockSize = 256;
        private ServerLive[] _block = [];
        private int _next;

        public ServerLive Take(ulong idHash)
        {
            if (_next == _block.Length)
            {
                _block = new ServerLive[BlockSize];
                for (int i = 0; i < BlockSize; i++)
                {
                    _block[i] = new ServerLive();
                }

                _next = 0;
            }

            ServerLive live = _block[_next];
            _block[_next++] = null!;
            live.IdHash = idHash;
            return live;
        }
    }

    public void SetCapacity(int capacity, int weight)
    {
        Capacity = capacity;
        Volatile.Write(ref LoadFactor, (1UL << 32) / (ulong)capacity);
        Volatile.Write(ref Stride, (1L << 32) / Math.Max(1, weight));
    }

    public void MarkHeard(ServerState state, long timestamp, long utcTicks)
    {
        Volatile.Write(ref LastHeardUtcTicks, utcTicks);
        Volatile.Write(ref LastHeardTimestamp, timestamp);
        State = (int)state;
    }

    /// <summary>Undoes one issued ticket, never going below zero (a heartbeat may have reset the count meanwhile).</summary>
    public void Unissue()
    {
        int v = Volatile.Read(ref Issued);
        while (v > 0)
        {
            int seen = Interlocked.CompareExchange(ref Issued, v - 1, v);
            if (seen == v)
            {
                return;
            }

            v = seen;
        }
    }
}
