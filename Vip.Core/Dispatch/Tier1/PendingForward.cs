using System.Net;
using Vip.Protocol;

namespace Vip.Dispatch.Tier1;

/// <summary>Where the answer to a forwarded task goes: a client connection or the UDP listener.</summary>
internal interface IAnswerSink
{
    /// <summary>
    /// Sends the answer (<paramref name="type"/>, <paramref name="payload"/>) to the client's request
    /// <paramref name="clientRequestId"/> (to <paramref name="replyTo"/> for UDP). Returns the outbox the caller must
    /// flush after its batch, or null.
    /// </summary>
    FrameOutbox? Deliver(ulong clientRequestId, SocketAddress? replyTo, FrameType type, ReadOnlySpan<byte> payload);
}

/// <summary>
/// One task on its way to a tier-2 daemon: who asked, the encoded FORWARD frame (kept so it can be re-sent to
/// another tier-2 on failover), and where it is now. Instances live in <see cref="PendingTable"/> and are reused.
/// </summary>
internal sealed class PendingForward
{
    public PendingForward(int index) => Index = index;

    /// <summary>Position in the table; the low 32 bits of the link request id.</summary>
    public int Index { get; }

    /// <summary>Bumped on every send, so an answer to an earlier attempt is recognised as stale.</summary>
    public uint Generation;

    /// <summary>True while the request waits for an answer.</summary>
    public bool InFlight;

    public IAnswerSink? Owner;
    public ulong ClientRequestId;
    public ulong ClientHash;

    /// <summary>Index of the link the current attempt went to, -1 when none.</summary>
    public int LinkIndex = -1;

    /// <summary>Links tried so far (bit per link index).</summary>
    public ulong Tried;

    /// <summary>Timestamp (<see cref="TimeProvider.GetTimestamp"/>) of the current attempt.</summary>
    public long SentAt;

    /// <summary>Why the last attempt failed (Unavailable or Timeout); decides the final REJECT.</summary>
    public RejectCode LastFailure;

    /// <summary>The FORWARD frame, header included (request id patched per attempt).</summary>
    public byte[] Frame = new byte[256];
    public int FrameLength;

    /// <summary>Where a UDP answer goes (reused across requests).</summary>
    public SocketAddress? ReplyAddress;

    /// <summary>The link request id of the current attempt: generation in the high half, index in the low half.</summary>
    public ulong LinkRequestId => ((ulong)Generation << 32) | (uint)Index;

    public Span<byte> PrepareFrame(int length)
    {
        if (Frame.Length < length)
        {
            Frame = new byte[Math.Max(length, Frame.Length * 2)];
        }
        else if (Frame.Length > 64 * 1024 && length <= 4096)
        {
            // A rare large task must not pin a large buffer for good.
            Frame = new byte[4096];
        }

        FrameLength = length;
        return Frame.AsSpan(0, length);
    }
}

/// <summary>
/// The fixed-size table of tasks in flight towards tier-2, shared by every link. A free-list (LIFO, so the
/// used part stays dense) hands out slots; the scan for timeouts stops at the highest slot ever used.
/// </summary>
/// <remarks>
/// The free-list is a lock-free stack (Treiber) over an array of next-indices: every client connection and every
/// link loop rents and returns slots, and with the socket engine's threads running those loops side by side a lock
/// here was the most contended one in tier-1. The head packs a version (high 32 bits) with the top index + 1 (low
/// 32 bits, 0 = empty); the version changes on every push and pop, so a compare-exchange that saw an old head fails
/// (no ABA).
/// </remarks>
internal sealed class PendingTable
{
    private readonly PendingForward?[] _slots;
    private readonly int[] _next;   // for a free slot: the index + 1 of the free slot below it, 0 at the bottom
    private long _head;
    private int _inUse;
    private int _highWater;

    public PendingTable(int capacity)
    {
        _slots = new PendingForward?[capacity];
        _next = new int[capacity];
        // Slot 0 on top, then 1, 2, ...: the first tasks use the lowest slots.
        for (var i = 0; i < capacity; i++)
        {
            _next[i] = i + 1 < capacity ? i + 2 : 0;
        }

        _head = capacity > 0 ? 1 : 0;
    }

    public int Capacity => _slots.Length;

    /// <summary>Slots rented and not returned.</summary>
    public int InUse => Volatile.Read(ref _inUse);

    /// <summary>Number of slots the timeout scan must look at.</summary>
    public int HighWater => Volatile.Read(ref _highWater);

    public PendingForward? TryRent()
    {
        var spinner = default(SpinWait);
        int index;
        while (true)
        {
            var head = Volatile.Read(ref _head);
            var top = (int)(uint)head;
            if (top == 0)
            {
                return null;
            }

            index = top - 1;
            var next = Volatile.Read(ref _next[index]);
            var replacement = (long)(((ulong)head & 0xFFFF_FFFF_0000_0000UL) + (1UL << 32)) | (uint)next;
            if (Interlocked.CompareExchange(ref _head, replacement, head) == head)
            {
                break;
            }

            spinner.SpinOnce(sleep1Threshold: -1);
        }

        Interlocked.Increment(ref _inUse);
        var high = Volatile.Read(ref _highWater);
        while (index >= high)
        {
            var seen = Interlocked.CompareExchange(ref _highWater, index + 1, high);
            if (seen == high)
            {
                break;
            }

            high = seen;
        }

        return _slots[index] ??= new PendingForward(index);
    }

    public void Return(PendingForward slot)
    {
        var spinner = default(SpinWait);
        while (true)
        {
            var head = Volatile.Read(ref _head);
            Volatile.Write(ref _next[slot.Index], (int)(uint)head);
            var replacement = (long)(((ulong)head & 0xFFFF_FFFF_0000_0000UL) + (1UL << 32)) | (uint)(slot.Index + 1);
            if (Interlocked.CompareExchange(ref _head, replacement, head) == head)
            {
                break;
            }

            spinner.SpinOnce(sleep1Threshold: -1);
        }

        Interlocked.Decrement(ref _inUse);
    }

    /// <summary>The slot for a link request id, or null when the id is not one of ours.</summary>
    public PendingForward? Find(ulong linkRequestId)
    {
        var index = (uint)linkRequestId;
        return index < (uint)_slots.Length ? Volatile.Read(ref _slots[index]) : null;
    }

    public PendingForward? At(int index) => Volatile.Read(ref _slots[index]);
}
