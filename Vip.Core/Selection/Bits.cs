using System.Buffers.Binary;
using System.Numerics;

namespace Vip.Selection;

/// <summary>Small helpers over server bitmaps (bit i = server index i of one <see cref="ServerSet"/>).</summary>
internal static class Bits
{
    public static int Words(int count) => (count + 63) >> 6;

    public static ulong[] All(int count)
    {
        var bits = new ulong[Words(count)];
        Array.Fill(bits, ulong.MaxValue);
        if ((count & 63) != 0)
        {
            bits[^1] = (1UL << (count & 63)) - 1;
        }

        return bits;
    }

    public static bool Test(ReadOnlySpan<ulong> bits, int i) => (bits[i >> 6] & (1UL << i)) != 0;

    public static void Set(Span<ulong> bits, int i) => bits[i >> 6] |= 1UL << i;

    public static void And(Span<ulong> dest, ReadOnlySpan<ulong> src)
    {
        for (int i = 0; i < dest.Length; i++)
        {
            dest[i] &= src[i];
        }
    }

    public static void AndNot(Span<ulong> dest, ReadOnlySpan<ulong> src)
    {
        for (int i = 0; i < dest.Length; i++)
        {
            dest[i] &= ~src[i];
        }
    }

    public static void Or(Span<ulong> dest, ReadOnlySpan<ulong> src)
    {
        for (int i = 0; i < dest.Length; i++)
        {
            dest[i] |= src[i];
        }
    }

    public static int Count(ReadOnlySpan<ulong> bits)
    {
        int n = 0;
        foreach (ulong w in bits)
        {
            n += BitOperations.PopCount(w);
        }

        return n;
    }

    public static bool IsEmpty(ReadOnlySpan<ulong> bits)
    {
        foreach (ulong w in bits)
        {
            if (w != 0)
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>A cheap hash of a short UTF-8 key (length, first and last 8 bytes) for small direct-mapped memos; collisions only cost a miss.</summary>
internal static class Utf8Key
{
    public static int Index(ReadOnlySpan<byte> utf8, int mask)
    {
        ulong h = (ulong)utf8.Length * 0x9E3779B97F4A7C15UL;
        if (utf8.Length >= 8)
        {
            h ^= BinaryPrimitives.ReadUInt64LittleEndian(utf8);
            h = (h * 0xBF58476D1CE4E5B9UL) ^ BinaryPrimitives.ReadUInt64LittleEndian(utf8[^8..]);
        }
        else
        {
            foreach (byte b in utf8)
            {
                h = (h << 8) | b;
            }
        }

        h *= 0x94D049BB133111EBUL;
        return (int)(h >> 40) & mask;
    }
}

/// <summary>
/// The servers (by index) that have one attribute key, or one key=value pair: a sorted member list, plus a
/// bitmap when at least one server in 32 is a member (then the bitmap is no bigger than the list).
/// </summary>
internal sealed class Posting
{
    public static readonly Posting Empty = new([], 0);

    public Posting(int[] members, int serverCount)
    {
        Members = members;
        if (members.Length > 0 && members.Length * 32 >= serverCount)
        {
            Dense = ToBits(serverCount);
        }
    }

    public int[] Members { get; }

    public ulong[]? Dense { get; }

    public int Count => Members.Length;

    public bool Contains(int i) => Dense is { } d ? Bits.Test(d, i) : Array.BinarySearch(Members, i) >= 0;

    public void OrInto(Span<ulong> dest)
    {
        if (Dense is { } d)
        {
            Bits.Or(dest, d);
            return;
        }

        foreach (int m in Members)
        {
            Bits.Set(dest, m);
        }
    }

    public ulong[] ToBits(int serverCount)
    {
        if (Dense is { } d)
        {
            return (ulong[])d.Clone();
        }

        var bits = new ulong[Bits.Words(serverCount)];
        foreach (int m in Members)
        {
            Bits.Set(bits, m);
        }

        return bits;
    }
}

/// <summary>Everything the index knows about one attribute key.</summary>
internal sealed class KeyIndex
{
    public KeyIndex(Posting exists, Dictionary<string, Posting> values, (double Number, Posting Servers)[] numeric)
    {
        Exists = exists;
        Values = values;
        ValueLookup = values.GetAlternateLookup<ReadOnlySpan<char>>();
        Numeric = numeric;
    }

    /// <summary>Servers that have the key.</summary>
    public Posting Exists { get; }

    /// <summary>Servers per value.</summary>
    public Dictionary<string, Posting> Values { get; }

    public Dictionary<string, Posting>.AlternateLookup<ReadOnlySpan<char>> ValueLookup { get; }

    /// <summary>The values that are numbers, sorted by number (values spelled differently but equal, like 8 and 8.0, appear twice).</summary>
    public (double Number, Posting Servers)[] Numeric { get; }

    public Posting Get(string value) => Values.TryGetValue(value, out Posting? p) ? p : Posting.Empty;
}
