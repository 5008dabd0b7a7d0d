using System.Security.Cryptography;
using Vip.Tickets;

namespace Vip.Tests.Tickets;

public class TicketCryptoTests
{
    private static byte[] Bytes(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    [Test]
    public void OpenSsl_hmac_is_used_on_linux_and_passes_its_known_answer_check()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Ignore("OpenSSL's HMAC_CTX is called directly on Linux only");
        }

        Assert.That(OpenSslHmac.IsAvailable, Is.True);
        Assert.That(new ThreadLocalHmac(Bytes(32, 1)).IsNative, Is.True);
    }

    [Test]
    public void Both_hmac_entry_points_equal_hmacsha256_for_every_length_and_key_size([Values(32, 48, 64)] int keyLength)
    {
        var key = Bytes(keyLength, keyLength);
        var native = new ThreadLocalHmac(key);
        var managed = new ThreadLocalHmac(key, allowNative: false);
        Assert.That(managed.IsNative, Is.False);
        var mac = new byte[32];
        // Lengths around the SHA-256 block boundaries; each context is reused from one length to the next.
        foreach (var length in new[] { 0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 300, 1000 })
        {
            var data = Bytes(length, length);
            var expected = HMACSHA256.HashData(key, data);
            native.Compute(data, mac);
            Assert.That(mac, Is.EqualTo(expected), $"native, {length} bytes");
            managed.Compute(data, mac);
            Assert.That(mac, Is.EqualTo(expected), $"managed, {length} bytes");
        }
    }

    [Test]
    public void Hmac_contexts_are_per_thread_and_agree_under_concurrency()
    {
        var key = Bytes(32, 7);
        var hmac = new ThreadLocalHmac(key);
        var failures = 0;
        Parallel.For(0, 4_000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            var data = Bytes(i % 200, i);
            var mac = new byte[32];
            hmac.Compute(data, mac);
            if (!mac.AsSpan().SequenceEqual(HMACSHA256.HashData(key, data)))
            {
                Interlocked.Increment(ref failures);
            }
        });
        Assert.That(failures, Is.Zero);
    }

    [Test]
    public void Managed_switch_keeps_new_keys_on_incremental_hash()
    {
        AppContext.SetSwitch(ThreadLocalHmac.UseManagedSwitch, true);
        try
        {
            Assert.That(TicketKey.Generate(1, DateTimeOffset.UnixEpoch).Hmac.IsNative, Is.False);
        }
        finally
        {
            AppContext.SetSwitch(ThreadLocalHmac.UseManagedSwitch, false);
        }
    }

    [Test]
    public void Mac_compare_finds_every_single_bit_difference()
    {
        var a = Bytes(32, 3);
        Assert.That(TicketCrypto.MacEquals(a, a.ToArray()), Is.True);
        for (var bit = 0; bit < 256; bit++)
        {
            var b = a.ToArray();
            b[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.That(TicketCrypto.MacEquals(a, b), Is.False, $"bit {bit}");
        }

        Assert.That(TicketCrypto.MacEquals(a, a.AsSpan(0, 31)), Is.False, "short");
        Assert.That(TicketCrypto.MacEquals(a.AsSpan(0, 31), a.AsSpan(0, 31)), Is.False, "not a MAC length");
    }
}
