using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Unicode;
using System.Buffers;

namespace Vip.Selection;

/// <summary>
/// A bounded cache of parsed requirements keyed by their text, so a repeated requirement costs neither a
/// parse nor an allocation. Lookups accept UTF-8 bytes straight from the wire (decoded into a stack buffer
/// and looked up through the dictionary's span lookup). Bad requirements are cached as errors, so a client
/// repeating one costs no exception either. Thread-safe; lookups take no lock.
/// </summary>
/// <remarks>
/// Two generations of half the capacity each: a hit in the older one promotes the entry; when the young
/// generation fills up it becomes the old one and the oldest is dropped. Hostile streams of distinct
/// requirements therefore cost memory bounded by <see cref="Capacity"/>, never more.
/// </remarks>
public sealed class RequirementCache
{
    private const int RecentSize = 64;

    private readonly int _generationSize;
    private readonly Entry _tooLong;

    // The requirements seen last, by a hash of their UTF-8 bytes: a repeated requirement is found by one byte
    // comparison, without decoding it or hashing its text. Direct-mapped: a collision replaces the older one.
    private readonly Entry?[] _recent = new Entry?[RecentSize];
    private Generation _young;
    private Generation _old;

    /// <summary>Creates a cache.</summary>
    /// <param name="capacity">Most entries kept (at least 2). Default 1 024.</param>
    /// <param name="limits">Parsing caps; <see cref="RequirementLimits.Default"/> when null.</param>
    public RequirementCache(int capacity = 1024, RequirementLimits? limits = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 2);
        Limits = limits ?? RequirementLimits.Default;
        if (Limits.Validate() is { } problem)
        {
            throw new ArgumentException(problem, nameof(limits));
        }

        Capacity = capacity;
        _generationSize = capacity / 2;
        _young = new Generation();
        _old = new Generation();
        _tooLong = new Entry(null, new RequirementError(Limits.MaxLength, string.Create(CultureInfo.InvariantCulture, $"requirement longer than {Limits.MaxLength} characters")));
    }

    /// <summary>Most entries the cache keeps.</summary>
    public int Capacity { get; }

    /// <summary>The parsing caps.</summary>
    public RequirementLimits Limits { get; }

    /// <summary>Number of requirements parsed so far (cache misses).</summary>
    public long Misses => Interlocked.Read(ref _misses);

    private long _misses;

    /// <summary>Returns the parsed requirement, parsing it on first sight.</summary>
    /// <param name="text">The requirement text.</param>
    /// <returns>The expression.</returns>
    /// <exception cref="RequirementSyntaxException">The text is not a valid requirement.</exception>
    public RequirementExpression GetOrParse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Unwrap(Get(text.AsSpan()));
    }

    /// <summary>Returns the parsed requirement for UTF-8 text, parsing it on first sight.</summary>
    /// <param name="utf8">The requirement text as UTF-8 bytes (for example a slice of a TASK payload).</param>
    /// <returns>The expression.</returns>
    /// <exception cref="RequirementSyntaxException">The text is not a valid requirement or not valid UTF-8.</exception>
    public RequirementExpression GetOrParse(ReadOnlySpan<byte> utf8) => Unwrap(Get(utf8));

    private static RequirementExpression Unwrap(Entry e)
    {
        if (e.Error is { } error)
        {
            RequirementSyntaxException.Throw(error);
        }

        return e.Expression!;
    }

    internal Entry Get(ReadOnlySpan<byte> utf8)
    {
        if (utf8.IsEmpty)
        {
            return Entry.EmptyRequirement;
        }

        if (utf8.Length > RequirementLimits.MaxLengthCeiling * 4)
        {
            return _tooLong;
        }

        ref Entry? recent = ref _recent[Utf8Key.Index(utf8, RecentSize - 1)];
        if (Volatile.Read(ref recent) is { } hit && hit.Utf8.AsSpan().SequenceEqual(utf8))
        {
            return hit;
        }

        Entry entry = Decode(utf8);
        if (entry.Text.Length > 0)
        {
            // Once per entry: its UTF-8 bytes, for the comparison above.
            entry.Utf8 ??= utf8.ToArray();
            Volatile.Write(ref recent, entry);
        }

        return entry;
    }

    private Entry Decode(ReadOnlySpan<byte> utf8)
    {
        // Every UTF-8 sequence decodes to at most as many chars as it has bytes; one char more than the
        // limit is enough to tell "too long" apart from "fits".
        int room = Math.Min(utf8.Length, Limits.MaxLength + 1);
        char[]? rented = null;
        Span<char> buffer = room <= 512 ? stackalloc char[512] : (rented = ArrayPool<char>.Shared.Rent(room));
        try
        {
            OperationStatus status = Utf8.ToUtf16(utf8, buffer[..room], out int read, out int written, replaceInvalidSequences: false);
            if (status == OperationStatus.DestinationTooSmall || written > Limits.MaxLength)
            {
                return _tooLong;
            }

            if (status != OperationStatus.Done)
            {
                // The protocol codec already rejects invalid UTF-8; this is defence in depth, not a hot path.
                return new Entry(null, new RequirementError(read, "invalid UTF-8"));
            }

            return Get(buffer[..written]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<char>.Shared.Return(rented);
            }
        }
    }

    internal Entry Get(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty)
        {
            return Entry.EmptyRequirement;
        }

        if (text.Length > Limits.MaxLength)
        {
            return _tooLong;
        }

        Generation young = Volatile.Read(ref _young);
        if (young.Lookup.TryGetValue(text, out Entry? entry))
        {
            return entry;
        }

        Generation old = Volatile.Read(ref _old);
        if (old.Lookup.TryGetValue(text, out entry))
        {
            Add(young, entry.Text, entry);
            return entry;
        }

        Interlocked.Increment(ref _misses);
        string s = text.ToString();
        entry = RequirementParser.TryParse(text, s, Limits, out RequirementExpression? expression, out RequirementError? error)
            ? new Entry(expression, null)
            : new Entry(null, error);
        entry.Text = s;
        Add(young, s, entry);
        return entry;
    }

    private void Add(Generation young, string key, Entry entry)
    {
        if (!young.Map.TryAdd(key, entry))
        {
            return;
        }

        if (Interlocked.Increment(ref young.Count) == _generationSize)
        {
            // Exactly one thread sees the count reach the size and rotates: the young generation becomes
            // the old one and the oldest entries go.
            Volatile.Write(ref _old, young);
            Volatile.Write(ref _young, new Generation());
        }
    }

    private sealed class Generation
    {
        public readonly ConcurrentDictionary<string, Entry> Map = new(StringComparer.Ordinal);
        public readonly ConcurrentDictionary<string, Entry>.AlternateLookup<ReadOnlySpan<char>> Lookup;
        public int Count;

        public Generation() => Lookup = Map.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>One cached requirement: the expression or the error, plus the expression compiled for the last server snapshot.</summary>
    internal sealed class Entry
    {
        public static readonly Entry EmptyRequirement = new(RequirementExpression.Empty, null) { Text = string.Empty };

        public Entry(RequirementExpression? expression, RequirementError? error)
        {
            Expression = expression;
            Error = error;
        }

        public RequirementExpression? Expression { get; }

        public RequirementError? Error { get; }

        public string Text { get; set; } = string.Empty;

        /// <summary>The text as UTF-8, set the first time the entry is looked up by bytes.</summary>
        public byte[]? Utf8 { get; set; }

        /// <summary>The expression compiled against one <see cref="ServerSet"/>; replaced when the set changes.</summary>
        public volatile CompiledRequirement? Compiled;
    }
}
