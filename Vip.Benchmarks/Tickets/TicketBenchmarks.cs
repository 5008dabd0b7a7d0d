using System.Net;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Vip.Tickets;

namespace Vip.Benchmarks.Tickets;

/// <summary>
/// Ticket sign and verify (issue 4: sign + verify ≤ 2 µs, 0 B allocated). The clock moves 1 ms per operation, so
/// the replay cache holds a steady ~32 000 tickets (lifetime 30 s + skew 2 s) and forgets one entry per verify.
/// <see cref="OpenSslHmac"/> runs the same path with both HMAC entry points in one run; the pieces are timed in
/// <see cref="TicketBreakdownBenchmarks"/>.
/// </summary>
[MemoryDiagnoser]
public class TicketBenchmarks
{
    private readonly byte[] _buffer = new byte[TicketIssuer.MaxTicketLength];
    private readonly byte[] _hmacKey = new byte[32];
    private readonly byte[] _mac = new byte[32];
    private readonly byte[] _presented = new byte[TicketIssuer.MaxTicketLength];
    private readonly IPAddress _client = IPAddress.Parse("10.1.2.3");
    private SteppingClock _clock = null!;
    private TicketIssuer _issuer = null!;
    private TicketVerifier _verifier = null!;
    private int _presentedLength;
    private ulong _ticketId;

    /// <summary>True: the keys call OpenSSL's HMAC_CTX directly (the default on Linux); false: IncrementalHash, as before.</summary>
    [Params(true, false)]
    public bool OpenSslHmac { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _clock = new SteppingClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        AppContext.SetSwitch(ThreadLocalHmac.UseManagedSwitch, !OpenSslHmac);
        var keys = TicketKeyRing.CreateNew(_clock).WithNewKey(activate: true, _clock);
        AppContext.SetSwitch(ThreadLocalHmac.UseManagedSwitch, false);
        if (keys.Active.Hmac.IsNative != OpenSslHmac)
        {
            throw new InvalidOperationException("OpenSSL's HMAC_CTX is not available on this machine");
        }

        _issuer = new TicketIssuer(keys, null, _clock);
        _verifier = new TicketVerifier(keys, new TicketVerifierOptions { ServerId = "app-server-17" }, _clock);
        _presentedLength = _issuer.Issue(_presented, "app-server-17", _client, 1, out _);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _issuer.Dispose();
        _verifier.Dispose();
    }

    [Benchmark]
    public int Sign()
    {
        _clock.Step();
        return _issuer.Issue(_buffer, "app-server-17", _client, ++_ticketId, out _);
    }

    /// <summary>Verify only: the ticket is replayed, so this is the full check path up to the replay cache lookup.</summary>
    [Benchmark]
    public TicketStatus VerifyReplayed() => _verifier.Verify(_presented.AsSpan(0, _presentedLength), _client);

    [Benchmark(Baseline = true)]
    public TicketStatus SignAndVerify()
    {
        _clock.Step();
        var n = _issuer.Issue(_buffer, "app-server-17", _client, ++_ticketId, out _);
        var status = _verifier.Verify(_buffer.AsSpan(0, n), _client);
        if (status != TicketStatus.Valid)
        {
            throw new InvalidOperationException("ticket denied: " + status);
        }

        return status;
    }

    /// <summary>Reference inside the same run: one HMAC-SHA256 over a ticket-sized message (sign + verify costs two).</summary>
    [Benchmark]
    public int HmacReference() => HMACSHA256.HashData(_hmacKey, _presented.AsSpan(0, _presentedLength), _mac);

    private sealed class SteppingClock(DateTimeOffset start) : TimeProvider
    {
        private DateTimeOffset _now = start;

        public override DateTimeOffset GetUtcNow() => _now;

        public void Step() => _now = _now.AddMilliseconds(1);
    }
}

/// <summary><see cref="TicketBenchmarks"/> timed in the benchmark thread's CPU time (see <see cref="Selection.ThreadCpuClock"/>).</summary>
[Config(typeof(Selection.ThreadCpuTimeConfig))]
public class TicketCpuTimeBenchmarks : TicketBenchmarks
{
}
