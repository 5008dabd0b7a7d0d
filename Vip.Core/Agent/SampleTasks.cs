using System.Buffers;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using Vip.Protocol;

namespace Vip.Agent;

/// <summary>Status codes of a RESULT frame sent by the sample app (docs/protocol.md, "RESULT").</summary>
public enum SampleTaskStatus : ushort
{
    /// <summary>The task ran; the output is its answer.</summary>
    Ok = 0,
    /// <summary>The task kind is not one the sample app knows.</summary>
    UnknownKind = 1,
    /// <summary>The task's argument is missing, unparsable or over its cap; the output says which.</summary>
    BadArgument = 2,
    /// <summary>The task was cancelled (the connection closed or the app server stopped).</summary>
    Cancelled = 3,
    /// <summary>The sample app failed unexpectedly; the output says how.</summary>
    Internal = 4,
}

/// <summary>Caps of the sample app's tasks.</summary>
public sealed class SampleTaskOptions
{
    /// <summary>Largest <c>n</c> a <c>primes</c> task may ask for. Default 20,000,000.</summary>
    public long MaxPrimesN { get; set; } = 20_000_000;

    /// <summary>Longest a <c>sleep</c> task may sleep. Default 10 seconds.</summary>
    public TimeSpan MaxSleep { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Tasks one claimed connection may run at once (more wait their turn). Default 8.</summary>
    public int MaxConcurrentTasksPerConnection { get; set; } = 8;

    /// <summary>A claimed connection with no task in flight for this long is closed. Default 60 seconds.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Throws when a value is out of range.</summary>
    public void Validate()
    {
        if (MaxPrimesN is < 2 or > 2_000_000_000)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPrimesN), MaxPrimesN, "must be between 2 and 2,000,000,000");
        }

        if (MaxSleep <= TimeSpan.Zero || MaxSleep > TimeSpan.FromHours(1))
        {
            throw new ArgumentOutOfRangeException(nameof(MaxSleep), MaxSleep, "must be positive and at most one hour");
        }

        if (MaxConcurrentTasksPerConnection is < 1 or > 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxConcurrentTasksPerConnection), MaxConcurrentTasksPerConnection, "must be between 1 and 1024");
        }

        if (IdleTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(IdleTimeout), IdleTimeout, "must be positive");
        }
    }
}

/// <summary>The outcome of one sample task: a status and the output bytes.</summary>
/// <param name="Status">What happened.</param>
/// <param name="Output">The answer (or, on failure, a message in UTF-8).</param>
public readonly record struct SampleTaskOutcome(SampleTaskStatus Status, byte[] Output)
{
    /// <summary>The output as UTF-8 text.</summary>
    public string Text => Encoding.UTF8.GetString(Output);

    internal static SampleTaskOutcome Ok(string text) => new(SampleTaskStatus.Ok, Encoding.UTF8.GetBytes(text));

    internal static SampleTaskOutcome Fail(SampleTaskStatus status, string message) => new(status, Encoding.UTF8.GetBytes(message));
}

/// <summary>
/// The real computations of the sample app server: <c>sha256</c> (lower-case hex of the SHA-256 of the body),
/// <c>primes</c> (how many primes are ≤ n; n is the body as decimal text, or the attribute <c>n</c>), <c>sleep</c>
/// (milliseconds, from the body or the attribute <c>ms</c>) and <c>echo</c> (the body back).
/// </summary>
public static class SampleTasks
{
    /// <summary>The task kinds the sample app runs.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["sha256", "primes", "sleep", "echo"];

    /// <summary>Runs one task and returns its outcome; never throws except for cancellation of <paramref name="cancellationToken"/>.</summary>
    public static async ValueTask<SampleTaskOutcome> RunAsync(
        string kind, IReadOnlyList<KeyValuePair<string, string>> attributes, ReadOnlyMemory<byte> body,
        SampleTaskOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(kind);
        ArgumentNullException.ThrowIfNull(attributes);
        ArgumentNullException.ThrowIfNull(options);
        switch (kind)
        {
            case "sha256":
                return SampleTaskOutcome.Ok(Sha256Hex(body.Span));
            case "echo":
                return new SampleTaskOutcome(SampleTaskStatus.Ok, body.ToArray());
            case "primes":
            {
                if (!TryReadArgument(body.Span, attributes, "n", out var n, out var error))
                {
                    return SampleTaskOutcome.Fail(SampleTaskStatus.BadArgument, "primes: " + error);
                }

                if (n > options.MaxPrimesN)
                {
                    return SampleTaskOutcome.Fail(SampleTaskStatus.BadArgument, $"primes: n = {n} exceeds the cap of {options.MaxPrimesN}");
                }

                // The sieve is CPU work: keep it off the connection's I/O thread.
                var count = await Task.Run(() => CountPrimes(n, cancellationToken), cancellationToken).ConfigureAwait(false);
                return SampleTaskOutcome.Ok(count.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            case "sleep":
            {
                if (!TryReadArgument(body.Span, attributes, "ms", out var ms, out var error))
                {
                    return SampleTaskOutcome.Fail(SampleTaskStatus.BadArgument, "sleep: " + error);
                }

                if (ms > (long)options.MaxSleep.TotalMilliseconds)
                {
                    return SampleTaskOutcome.Fail(SampleTaskStatus.BadArgument, $"sleep: {ms} ms exceeds the cap of {(long)options.MaxSleep.TotalMilliseconds} ms");
                }

                await Task.Delay(TimeSpan.FromMilliseconds(ms), cancellationToken).ConfigureAwait(false);
                return SampleTaskOutcome.Ok(ms.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            default:
                return SampleTaskOutcome.Fail(SampleTaskStatus.UnknownKind, $"unknown task kind '{kind}' (known: {string.Join(", ", Kinds)})");
        }
    }

    /// <summary>Lower-case hex of the SHA-256 of <paramref name="data"/>.</summary>
    public static string Sha256Hex(ReadOnlySpan<byte> data)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(data, hash);
        return Convert.ToHexStringLower(hash);
    }

    /// <summary>
    /// How many primes are ≤ <paramref name="n"/>: a segmented sieve of Eratosthenes over odd numbers, so memory
    /// stays at a few tens of kilobytes whatever n is.
    /// </summary>
    public static long CountPrimes(long n, CancellationToken cancellationToken = default)
    {
        if (n < 2)
        {
            return 0;
        }

        var root = (int)Math.Sqrt(n);
        while ((long)(root + 1) * (root + 1) <= n)
        {
            root++;
        }

        // Small primes up to √n by a plain sieve.
        var small = new bool[root + 1];
        var basePrimes = new List<int>();
        for (var i = 2; i <= root; i++)
        {
            if (small[i])
            {
                continue;
            }

            basePrimes.Add(i);
            for (long j = (long)i * i; j <= root; j += i)
            {
                small[j] = true;
            }
        }

        const int SegmentSize = 32 * 1024;
        var composite = ArrayPool<bool>.Shared.Rent(SegmentSize);
        try
        {
            long count = 1; // the prime 2
            // Segment k covers the odd numbers low, low+2, ..., low + 2*(SegmentSize-1).
            for (long low = 3; low <= n; low += 2L * SegmentSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var high = Math.Min(n, low + (2L * SegmentSize) - 2);
                var len = (int)(((high - low) / 2) + 1);
                Array.Clear(composite, 0, len);
                foreach (var p in basePrimes)
                {
                    if (p == 2)
                    {
                        continue;
                    }

                    long pp = (long)p * p;
                    if (pp > high)
                    {
                        break;
                    }

                    // First odd multiple of p that is ≥ max(p², low).
                    var start = Math.Max(pp, ((low + p - 1) / p) * p);
                    if ((start & 1) == 0)
                    {
                        start += p;
                    }

                    for (var m = start; m <= high; m += 2L * p)
                    {
                        composite[(int)((m - low) / 2)] = true;
                    }
                }

                for (var i = 0; i < len; i++)
                {
                    if (!composite[i])
                    {
                        count++;
                    }
                }
            }

            return count;
        }
        finally
        {
            ArrayPool<bool>.Shared.Return(composite);
        }
    }

    // The argument of primes/sleep: the body as decimal text when there is one, else the attribute.
    private static bool TryReadArgument(ReadOnlySpan<byte> body, IReadOnlyList<KeyValuePair<string, string>> attributes, string attribute, out long value, out string error)
    {
        var text = body.Trim(" \t\r\n"u8);
        if (!text.IsEmpty)
        {
            if (Utf8Parser.TryParse(text, out value, out var used) && used == text.Length && value >= 0)
            {
                error = "";
                return true;
            }

            error = "the body is not a non-negative decimal integer";
            return false;
        }

        foreach (var pair in attributes)
        {
            if (pair.Key == attribute)
            {
                if (long.TryParse(pair.Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out value))
                {
                    error = "";
                    return true;
                }

                error = $"attribute '{attribute}' is not a non-negative decimal integer";
                return false;
            }
        }

        value = 0;
        error = $"give the argument as the body (decimal text) or as the attribute '{attribute}'";
        return false;
    }

    internal static TaskResult ToResult(in SampleTaskOutcome outcome) => new((ushort)outcome.Status, outcome.Output);
}
