using System.Text;

namespace Vip.Protocol;

/// <summary>
/// A validated <c>attrs</c> field, viewed in place: enumerate it for (key, value) UTF-8 pairs without allocating,
/// or call <see cref="ToArray"/> to keep it.
/// </summary>
public readonly ref struct AttributeList
{
    private readonly ReadOnlySpan<byte> _raw;

    internal AttributeList(ReadOnlySpan<byte> raw, int count)
    {
        _raw = raw;
        Count = count;
    }

    /// <summary>Number of attributes.</summary>
    public int Count { get; }

    /// <summary>The encoded pairs, without the leading count byte.</summary>
    public ReadOnlySpan<byte> Raw => _raw;

    /// <summary>Enumerates the pairs.</summary>
    public Enumerator GetEnumerator() => new(_raw);

    /// <summary>Finds the value of <paramref name="key"/> (UTF-8); false when absent.</summary>
    public bool TryGetValue(ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value)
    {
        foreach (var pair in this)
        {
            if (pair.Key.SequenceEqual(key))
            {
                value = pair.Value;
                return true;
            }
        }

        value = default;
        return false;
    }

    /// <summary>Materialises the pairs as strings.</summary>
    public KeyValuePair<string, string>[] ToArray()
    {
        if (Count == 0)
        {
            return [];
        }

        var result = new KeyValuePair<string, string>[Count];
        var i = 0;
        foreach (var pair in this)
        {
            result[i++] = new(Encoding.UTF8.GetString(pair.Key), Encoding.UTF8.GetString(pair.Value));
        }

        return result;
    }

    internal void EnsureUniqueKeys()
    {
        // n ≤ 32, so the quadratic check costs less than hashing would.
        var outer = GetEnumerator();
        var index = 0;
        while (outer.MoveNext())
        {
            var key = outer.Current.Key;
            var inner = GetEnumerator();
            for (var j = 0; j <= index && inner.MoveNext(); j++)
            {
                if (j < index && inner.Current.Key.SequenceEqual(key))
                {
                    VipProtocolException.ThrowMalformed("duplicate attribute key");
                }
            }

            index++;
        }
    }

    /// <summary>One attribute as UTF-8 spans.</summary>
    public readonly ref struct Pair
    {
        internal Pair(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
        {
            Key = key;
            Value = value;
        }

        /// <summary>The key.</summary>
        public ReadOnlySpan<byte> Key { get; }

        /// <summary>The value.</summary>
        public ReadOnlySpan<byte> Value { get; }
    }

    /// <summary>Walks the encoded pairs (already validated when the list was read).</summary>
    public ref struct Enumerator
    {
        private readonly ReadOnlySpan<byte> _raw;
        private int _pos;

        internal Enumerator(ReadOnlySpan<byte> raw)
        {
            _raw = raw;
            _pos = 0;
            Current = default;
        }

        /// <summary>The current pair.</summary>
        public Pair Current { get; private set; }

        /// <summary>Moves to the next pair.</summary>
        public bool MoveNext()
        {
            if (_pos >= _raw.Length)
            {
                return false;
            }

            var kl = _raw[_pos];
            var key = _raw.Slice(_pos + 1, kl);
            _pos += 1 + kl;
            var vl = _raw[_pos];
            var value = _raw.Slice(_pos + 1, vl);
            _pos += 1 + vl;
            Current = new Pair(key, value);
            return true;
        }
    }
}
