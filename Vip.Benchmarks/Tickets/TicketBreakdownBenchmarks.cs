using System.Diagnostics.Metrics;
using System.Net;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Vip.Tickets;

namespace Vip.Benchmarks.Tickets;

/// <summary>
/// Where ticket sign and verify spend their time: each piece of <see cref="TicketIssuer.Issue(Span{byte}, string, IPAddress, ulong, long)"/>
/// and <see cref="TicketVerifier.Verify(ReadOnlySpan{byte}, IPAddress?)"/> timed on its own, in one run and in thread CPU
/// time, so the pieces can be added up and compared with the whole (<see cref="TicketCpuTimeBenchmarks"/>). The HMAC
/// is timed through every .NET entry point that could serve it, over the same 56 signed bytes a ticket has
/// (IPv4 client, 13-byte server id).
/// </summary>
[Config(typeof(Selection.ThreadCpuTimeConfig))]
public class TicketBreakdownBenchmarks
{
    private const string ServerId = "app-server-17";
    private const int Steady = 32_000; // tickets remembered at 1 000 verifies/s, 30 s lifetime + 2 s skew

    private readonly byte[] _ticket = new byte[TicketIssuer.MaxTicketLength];
    private readonly byte[] _scratch = new byte[TicketIssuer.MaxTicketLength];
    private readonly byte[] _mac = new byte[32];
    private readonly byte[] _nonce = new byte[16];
    private readonly IPAddress _client = IPAddress.Parse("10.1.2.3");
    private byte[] _serverIdUtf8 = null!;
    private byte[] _secret = null!;
    private TicketKeyRing _keys = null!;
    private TicketKey _key = null!;
    private TicketIssuer _issuer = null!;
    private IncrementalHash _incremental = null!;
    private HMACSHA256 _instance = null!;
    private ReplayCache _replay = null!;
    private ExpiringTable<UInt128, byte> _oldReplay = null!;
    private ThreadLocalHmac _managedHmac = null!;
    private long _oldNow;
    private UInt128 _oldNextKey;
    private Meter _meter = null!;
    private Counter<long> _counter = null!;
    private int _ticketLength;
    private int _signedLength;
    private long _now;
    private UInt128 _nextKey;
    private readonly Lock _gate = new();

    [GlobalSetup]
    public void Setup()
    {
        var clock = new FixedClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        _keys = TicketKeyRing.CreateNew(clock).WithNewKey(activate: true, clock);
        _key = _keys.Active;
        _secret = _key.Secret.ToArray();
        _issuer = new TicketIssuer(_keys, null, clock);
        _serverIdUtf8 = System.Text.Encoding.UTF8.GetBytes(ServerId);
        _ticketLength = _issuer.Issue(_ticket, ServerId, _client, 1, out _);
        _signedLength = _ticketLength - TicketFormat.MacLength;
        _incremental = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _secret);
        _instance = new HMACSHA256(_secret);
        _meter = new Meter("Vip.Benchmarks.Tickets");
        _counter = _meter.CreateCounter<long>("bench");

        _managedHmac = new ThreadLocalHmac(_secret, allowNative: false);
        _replay = new ReplayCache(262_144, 5 * 60_000 + 4_000);
        _oldReplay = new ExpiringTable<UInt128, byte>(262_144);
        _now = _oldNow = 1_000_000;
        for (var i = 0; i < Steady; i++)
        {
            Remember();
            RememberOld();
        }

        if (!_key.Hmac.IsNative)
        {
            Console.WriteLine("// note: OpenSSL's HMAC_CTX is not available here; the key uses IncrementalHash");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _issuer.Dispose();
        _incremental.Dispose();
        _instance.Dispose();
        _meter.Dispose();
    }

    // ---- sign pieces ----

    [Benchmark(Description = "sign: nonce, 16 B from the pooled CSPRNG buffer")]
    public byte Nonce()
    {
        TicketCrypto.FillRandom(_nonce);
        return _nonce[0];
    }

    [Benchmark(Description = "sign: ticket id (NewTicketId)")]
    public ulong TicketId() => TicketIssuer.NewTicketId();


    // ---- HMAC entry points, one ticket's signed bytes ----

    [Benchmark(Description = "sign: write the signed part (fields, nonce, address, id)")]
    public int Encode()
    {
        var offset = _issuer.WriteHead(_scratch, _client, 7, 1234, _serverIdUtf8.Length);
        _serverIdUtf8.CopyTo(_scratch.AsSpan(offset));
        return offset;
    }

    [Benchmark(Description = "hmac: a key's context (OpenSSL HMAC_CTX direct, if available)")]
    public byte HmacKey()
    {
        _key.Hmac.Compute(_ticket.AsSpan(0, _signedLength), _mac);
        return _mac[0];
    }

    [Benchmark(Description = "hmac: a key's context, managed fallback (per-thread IncrementalHash)")]
    public byte HmacKeyManaged()
    {
        _managedHmac.Compute(_ticket.AsSpan(0, _signedLength), _mac);
        return _mac[0];
    }

    [Benchmark(Description = "hmac: IncrementalHash Append+GetHashAndReset")]
    public int HmacIncremental()
    {
        _incremental.AppendData(_ticket, 0, _signedLength);
        return _incremental.GetHashAndReset(_mac);
    }

    [Benchmark(Description = "hmac: HMACSHA256 instance TryComputeHash")]
    public int HmacInstance()
    {
        _instance.TryComputeHash(_ticket.AsSpan(0, _signedLength), _mac, out var n);
        return n;
    }

    [Benchmark(Description = "hmac: static HMACSHA256.HashData")]
    public int HmacStatic() => HMACSHA256.HashData(_secret, _ticket.AsSpan(0, _signedLength), _mac);

    [Benchmark(Description = "reference: static SHA256.HashData (no key)")]
    public int Sha256Static() => SHA256.HashData(_ticket.AsSpan(0, _signedLength), _mac);

    // ---- verify pieces ----

    [Benchmark(Description = "verify: parse (TicketFormat.TryParse)")]
    public uint Parse() => TicketFormat.TryParse(_ticket.AsSpan(0, _ticketLength), out var t) ? t.KeyId : 0;

    [Benchmark(Description = "verify: key ring lookup")]
    public uint KeyLookup() => _keys.TryGetKey(_key.Id, out var k) ? k.Id : 0;

    [Benchmark(Description = "verify: MAC compare, TicketCrypto.MacEquals")]
    public bool MacCompare() => TicketCrypto.MacEquals(_mac, _ticket.AsSpan(_signedLength, 32));

    [Benchmark(Description = "verify: MAC compare, CryptographicOperations.FixedTimeEquals (before)")]
    public bool MacCompareFramework() => CryptographicOperations.FixedTimeEquals(_mac, _ticket.AsSpan(_signedLength, 32));

    [Benchmark(Description = "verify: client address canonical + compare")]
    public bool AddressCompare()
    {
        Span<byte> a = stackalloc byte[16];
        return TicketFormat.TryWriteCanonical(_client, a, out _) && a[12..].SequenceEqual(_ticket.AsSpan(TicketFormat.AddressOffset, 4));
    }

    [Benchmark(Description = "verify: replay cache lookup (32 000 held)")]
    public bool ReplayLookup() => _replay.Contains((_nextKey - 5000) * 0x9E3779B97F4A7C15UL);

    [Benchmark(Description = "verify: replay cache purge + insert (32 000 held)")]
    public bool ReplayInsert() => Remember();

    [Benchmark(Description = "verify: replay cache purge + insert, ExpiringTable (before)")]
    public bool ReplayInsertOld() => RememberOld();

    [Benchmark(Description = "verify: lock enter/exit, uncontended")]
    public int LockOnly()
    {
        lock (_gate)
        {
            return _ticketLength;
        }
    }

    // ---- both ----

    [Benchmark(Description = "clock: TimeProvider.System now (Unix ms)")]
    public long SystemClock() => TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds();

    [Benchmark(Description = "meter: Counter.Add with a tag, no listener")]
    public int CounterAdd()
    {
        _counter.Add(1, new KeyValuePair<string, object?>("vip.ticket.result", "ok"));
        return 0;
    }

    private bool Remember()
    {
        _now++;
        _nextKey++;
        _replay.Purge(_now);
        _replay.Add(_nextKey * 0x9E3779B97F4A7C15UL, _now + 32_000, _now);
        return true;
    }

    private bool RememberOld()
    {
        _oldNow++;
        _oldNextKey++;
        _oldReplay.Purge(_oldNow);
        _oldReplay.Set(_oldNextKey * 0x9E3779B97F4A7C15UL, 0, _oldNow + 32_000, _oldNow);
        return true;
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
