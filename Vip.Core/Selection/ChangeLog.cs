namespace Vip.Selection;

/// <summary>
/// A ring of the counter slots whose rank word changed, in order, shared by every thread of one engine: a thread
/// that kept its best candidates from an earlier decision reads the changes since then instead of walking every
/// candidate again. Writers never wait; a reader that fell more than a ring behind starts over.
/// </summary>
internal sealed class ChangeLog
{
    /// <summary>Entries kept (a power of two).</summary>
    public const int Size = 1 << 14;

    private const int SlotBits = 24;
    private const ulong SlotMask = (1UL << SlotBits) - 1;
    private const int SeqBits = 64 - SlotBits;
    private const long SeqMask = (1L << SeqBits) - 1;

    // Each entry: the low 40 bits of its position, then the slot; all ones before the first write.
    private readonly ulong[] _ring = CreateRing();
    private long _head;

    /// <summary>The position the next change will take.</summary>
    public long Head => Volatile.Read(ref _head);

    /// <summary>Records that a slot's rank word changed (after the change is written).</summary>
    public void Append(int slot)
    {
        long position = Interlocked.Increment(ref _head) - 1;
        Volatile.Write(ref _ring[position & (Size - 1)], ((ulong)(position & SeqMask) << SlotBits) | ((ulong)slot & SlotMask));
    }

    /// <summary>Reads the change at <paramref name="position"/> (below <see cref="Head"/>).</summary>
    /// <returns>1 with the slot; 0 when its writer has not stored it yet; -1 when it has been overwritten (the reader fell behind).</returns>
    public int TryRead(long position, out int slot)
    {
        ulong entry = Volatile.Read(ref _ring[position & (Size - 1)]);
        slot = (int)(entry & SlotMask);
        long seq = (long)(entry >> SlotBits);
        long ahead = ((seq - position) & SeqMask) << SlotBits >> SlotBits; // signed 40-bit difference
        return ahead == 0 ? 1 : ahead < 0 || entry == ulong.MaxValue ? 0 : -1;
    }

    private static ulong[] CreateRing()
    {
        var ring = new ulong[Size];
        Array.Fill(ring, ulong.MaxValue);
        return ring;
    }
}
