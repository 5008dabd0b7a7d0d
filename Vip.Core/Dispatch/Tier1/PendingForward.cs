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
internal sealed class PendingTable
{
    private readonly PendingForward?[] _slots;
    private readonly int[] _free;
    private readonly object _lock = new();
    private int _freeCount;
    private int _highWater;

    public PendingTable(int capacity)
    {
        _slots = new PendingForward?[capacity];
        _free = new int[capacity];
        for (var i = 0; i < capacity; i++)
        {
            _free[i] = capacity - 1 - i;
        }

        _freeCount = capacity;
    }

    public int Capacity => _slots.Length;

    public int InUse
    {
        get
        {
            lock (_lock)
            {
                return _slots.Length - _freeCount;
            }
        }
    }

    /// <summary>Number of slots the timeout scan must look at.</summary>
    public int HighWater => Volatile.Read(ref _highWater);

    public PendingForward? TryRent()
    {
        int index;
        lock (_lock)
        {
            if (_freeCount == 0)
            {
                return null;
            }

            index = _free[--_freeCount];
            if (index >= _highWater)
            {
                _highWater = index + 1;
            }
        }

        return _slots[index] ??= new PendingForward(index);
    }

    public void Return(PendingForward slot)
    {
        lock (_lock)
        {
            _free[_freeCount++] = slot.Index;
        }
    }

    /// <summary>The slot for a link request id, or null when the id is not one of ours.</summary>
    public PendingForward? Find(ulong linkRequestId)
    {
        var index = (uint)linkRequestId;
        return index < (uint)_slots.Length ? Volatile.Read(ref _slots[index]) : null;
    }

    public PendingForward? At(int index) => Volatile.Read(ref _slots[index]);
}
