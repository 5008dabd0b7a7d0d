using System.Security.Cryptography;

namespace Vip.Tickets;

/// <summary>
/// The two costly primitives of a ticket, made cheap per call: random bytes come from a per-thread buffer refilled
/// from the OS CSPRNG 1 KiB at a time (one <c>RAND_bytes</c> call costs about as much as an HMAC), and each key
/// keeps one keyed HMAC-SHA256 context per thread, reset after each use instead of set up again.
/// </summary>
internal static class TicketCrypto
{
    private const int RandomBufferLength = 1024;

    [ThreadStatic]
    private static byte[]? t_random;

    [ThreadStatic]
    private static int t_randomUsed;

    /// <summary>Fills <paramref name="destination"/> (at most 1 KiB) with CSPRNG bytes.</summary>
    public static void FillRandom(Span<byte> destination)
    {
        var buffer = t_random;
        if (buffer is null)
        {
            buffer = t_random = new byte[RandomBufferLength];
            t_randomUsed = RandomBufferLength;
        }

        if (t_randomUsed + destination.Length > RandomBufferLength)
        {
            RandomNumberGenerator.Fill(buffer);
            t_randomUsed = 0;
        }

        var chunk = buffer.AsSpan(t_randomUsed, destination.Length);
        chunk.CopyTo(destination);
        chunk.Clear(); // never hand out the same bytes twice, even after a bug
        t_randomUsed += destination.Length;
    }
}

/// <summary>One HMAC-SHA256 context per thread for one key; <see cref="Compute"/> allocates nothing after the first call on a thread.</summary>
internal sealed class ThreadLocalHmac
{
    private readonly ThreadLocal<IncrementalHash> _contexts;

    public ThreadLocalHmac(byte[] secret)
    {
        // The factory captures the secret array the key already holds; no further copies.
        _contexts = new ThreadLocal<IncrementalHash>(() => IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, secret), trackAllValues: false);
    }

    public void Compute(ReadOnlySpan<byte> data, Span<byte> mac32)
    {
        var hmac = _contexts.Value!;
        hmac.AppendData(data);
        hmac.GetHashAndReset(mac32);
    }
}
