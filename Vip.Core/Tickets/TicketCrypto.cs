using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Vip.Tickets;

/// <summary>
/// The costly primitives of a ticket, made cheap per call: random bytes come from a per-thread buffer refilled
/// from the OS CSPRNG 1 KiB at a time (one <c>RAND_bytes</c> call costs about as much as an HMAC), and MACs are
/// compared without data-dependent branches in a few instructions.
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

    /// <summary>
    /// Compares two 32-byte MACs in time independent of their contents: every byte is read and combined, and the
    /// only branch is on the final result. <see cref="CryptographicOperations.FixedTimeEquals"/> does the same but
    /// is compiled without optimisation on purpose (a byte loop of ~0.2 µs); this reads four 64-bit words each.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static bool MacEquals(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        if (a.Length != TicketFormat.MacLength || b.Length != TicketFormat.MacLength)
        {
            return false; // lengths are public: the wire format fixes them
        }

        var d = (BinaryPrimitives.ReadUInt64LittleEndian(a) ^ BinaryPrimitives.ReadUInt64LittleEndian(b))
              | (BinaryPrimitives.ReadUInt64LittleEndian(a[8..]) ^ BinaryPrimitives.ReadUInt64LittleEndian(b[8..]))
              | (BinaryPrimitives.ReadUInt64LittleEndian(a[16..]) ^ BinaryPrimitives.ReadUInt64LittleEndian(b[16..]))
              | (BinaryPrimitives.ReadUInt64LittleEndian(a[24..]) ^ BinaryPrimitives.ReadUInt64LittleEndian(b[24..]));
        return d == 0;
    }
}

/// <summary>
/// HMAC-SHA256 with one key, one reusable context per thread; <see cref="Compute"/> allocates nothing after the
/// first call on a thread. The platform's HMAC does the work either way; which entry point is used decides the
/// per-call overhead:
/// <list type="bullet">
/// <item>On Linux, OpenSSL's own <c>HMAC_CTX</c> (the library .NET itself uses there), called directly: reset with
/// the kept key, update, final — about a third of the cost of going through <see cref="IncrementalHash"/>, whose
/// layers (the EVP_MAC provider API, three SafeHandle round trips, clearing the error queue three times) cost more
/// than the three SHA-256 blocks of a ticket. Used only after a known-answer check against
/// <see cref="HMACSHA256.HashData(ReadOnlySpan{byte}, ReadOnlySpan{byte}, Span{byte})"/> passed in this process.</item>
/// <item>Elsewhere, when that library or check fails, or when the AppContext switch
/// <c>Vip.Tickets.UseManagedHmac</c> is on (runtimeconfig.json or <see cref="AppContext.SetSwitch"/> before the
/// keys are loaded): a reused <see cref="IncrementalHash"/>.</item>
/// </list>
/// </summary>
internal sealed class ThreadLocalHmac
{
    /// <summary>The AppContext switch that keeps keys created after it is set on <see cref="IncrementalHash"/>.</summary>
    public const string UseManagedSwitch = "Vip.Tickets.UseManagedHmac";

    private readonly byte[] _secret;
    private readonly ThreadLocal<OpenSslHmac.Context>? _native;
    private readonly ThreadLocal<IncrementalHash>? _managed;

    public ThreadLocalHmac(byte[] secret, bool allowNative = true)
    {
        // The factories capture the secret array the key already holds; no further copies.
        _secret = secret;
        if (allowNative && !(AppContext.TryGetSwitch(UseManagedSwitch, out var managed) && managed) && OpenSslHmac.IsAvailable)
        {
            _native = new ThreadLocal<OpenSslHmac.Context>(() => new OpenSslHmac.Context(_secret), trackAllValues: false);
        }
        else
        {
            _managed = new ThreadLocal<IncrementalHash>(() => IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _secret), trackAllValues: false);
        }
    }

    /// <summary>True when OpenSSL's HMAC is called directly (see the class remarks).</summary>
    public bool IsNative => _native is not null;

    /// <summary>Writes HMAC-SHA256(secret, <paramref name="data"/>) into the first 32 bytes of <paramref name="mac32"/>.</summary>
    public void Compute(ReadOnlySpan<byte> data, Span<byte> mac32)
    {
        if (_native is not null)
        {
            _native.Value!.Compute(data, mac32);
            return;
        }

        var hmac = _managed!.Value!;
        hmac.AppendData(data);
        hmac.GetHashAndReset(mac32);
    }
}

/// <summary>OpenSSL 3's <c>HMAC_CTX</c> API (<c>HMAC_Init_ex</c>, <c>HMAC_Update</c>, <c>HMAC_Final</c>), called directly.</summary>
internal static class OpenSslHmac
{
    private const string Library = "libcrypto.so.3";

    private static readonly Lazy<bool> s_available = new(Probe);

    /// <summary>True when libcrypto.so.3 loads and passes a known-answer check against .NET's HMAC-SHA256.</summary>
    public static bool IsAvailable => s_available.Value;

    private static bool Probe()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        try
        {
            // Two messages of different lengths, the second after a reset with the kept key: the path tickets use.
            Span<byte> key = stackalloc byte[TicketKey.GeneratedSecretLength];
            Span<byte> message = stackalloc byte[200];
            for (var i = 0; i < key.Length; i++)
            {
                key[i] = (byte)(0xA5 ^ i);
            }

            for (var i = 0; i < message.Length; i++)
            {
                message[i] = (byte)(i * 7);
            }

            Span<byte> expected = stackalloc byte[32];
            Span<byte> actual = stackalloc byte[32];
            using var context = new Context(key.ToArray());
            foreach (var length in (ReadOnlySpan<int>)[56, 200, 0])
            {
                HMACSHA256.HashData(key, message[..length], expected);
                context.Compute(message[..length], actual);
                if (!actual.SequenceEqual(expected))
                {
                    return false;
                }
            }

            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException or CryptographicException)
        {
            return false;
        }
    }

    /// <summary>One keyed <c>HMAC_CTX</c>; not thread-safe (one per thread).</summary>
    internal sealed class Context : SafeHandle
    {
        public Context(byte[] key)
            : base(IntPtr.Zero, ownsHandle: true)
        {
            SetHandle(Native.HMAC_CTX_new());
            if (IsInvalid)
            {
                throw new CryptographicException("HMAC_CTX_new failed");
            }

            if (Native.HMAC_Init_ex(this, ref MemoryMarshal.GetArrayDataReference(key), key.Length, Native.EVP_sha256(), IntPtr.Zero) != 1)
            {
                Dispose();
                throw new CryptographicException("HMAC_Init_ex failed");
            }
        }

        public override bool IsInvalid => handle == IntPtr.Zero;

        /// <summary>HMAC of <paramref name="data"/> with the key given at creation; the context is left ready for the next.</summary>
        public void Compute(ReadOnlySpan<byte> data, Span<byte> mac32)
        {
            if (mac32.Length < 32)
            {
                throw new ArgumentException("the MAC needs 32 bytes", nameof(mac32));
            }

            // A NULL key and digest reuse the kept ones (documented HMAC_Init_ex behaviour): back to the keyed state.
            // An empty message passes a null pointer with length 0, which HMAC_Update accepts.
            if (Native.HMAC_Init_ex(this, IntPtr.Zero, 0, IntPtr.Zero, IntPtr.Zero) != 1
                || Native.HMAC_Update(this, ref MemoryMarshal.GetReference(data), (nuint)data.Length) != 1
                || Native.HMAC_Final(this, ref MemoryMarshal.GetReference(mac32), out var written) != 1
                || written != 32)
            {
                throw new CryptographicException("OpenSSL HMAC failed");
            }
        }

        protected override bool ReleaseHandle()
        {
            Native.HMAC_CTX_free(handle);
            return true;
        }
    }

#pragma warning disable SYSLIB1054 // DllImport kept: every parameter is blittable or a SafeHandle, so the runtime stub is trivial.
#pragma warning disable CA5392 // the library is named with its soname and resolved like .NET's own OpenSSL shim does
    private static class Native
    {
        [DllImport(Library)]
        public static extern IntPtr HMAC_CTX_new();

        [DllImport(Library)]
        public static extern void HMAC_CTX_free(IntPtr ctx);

        [DllImport(Library)]
        public static extern IntPtr EVP_sha256();

        [DllImport(Library)]
        public static extern int HMAC_Init_ex(Context ctx, ref byte key, int length, IntPtr md, IntPtr engine);

        [DllImport(Library)]
        public static extern int HMAC_Init_ex(Context ctx, IntPtr key, int length, IntPtr md, IntPtr engine);

        [DllImport(Library)]
        public static extern int HMAC_Update(Context ctx, ref byte data, nuint length);

        [DllImport(Library)]
        public static extern int HMAC_Final(Context ctx, ref byte md, out uint length);
    }
#pragma warning restore CA5392
#pragma warning restore SYSLIB1054
}
