using System.Diagnostics.Metrics;
using System.Net;
using Vip.Tickets;

namespace Vip.Tests.Tickets;

public class TicketTests
{
    private static readonly IPAddress Client = IPAddress.Parse("127.0.0.10");
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private ManualClock _clock = null!;
    private TicketKeyRing _keys = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new ManualClock(Start);
        _keys = TicketKeyRing.CreateNew(_clock);
    }

    private TicketIssuer Issuer(TicketKeyRing? keys = null) => new(keys ?? _keys, new TicketIssuerOptions(), _clock);

    private TicketVerifier Verifier(TicketKeyRing? keys = null, Action<TicketVerifierOptions>? configure = null)
    {
        var o = new TicketVerifierOptions { ServerId = "app-1" };
        configure?.Invoke(o);
        return new TicketVerifier(keys ?? _keys, o, _clock);
    }

    private byte[] Issue(TicketIssuer issuer, string serverId = "app-1", IPAddress? client = null, ulong ticketId = 42)
    {
        var buffer = new byte[TicketIssuer.MaxTicketLength];
        var n = issuer.Issue(buffer, serverId, client ?? Client, ticketId, out _);
        return buffer[..n];
    }

    [Test]
    public void Issued_ticket_verifies_and_reads_back_its_fields()
    {
        using var issuer = Issuer();
        using var verifier = Verifier();
        var buffer = new byte[TicketIssuer.MaxTicketLength];
        var n = issuer.Issue(buffer, "app-1", Client, 0xDEADBEEF_00000001UL, out var expires);

        var status = verifier.Verify(buffer.AsSpan(0, n), Client, out var info);

        Assert.Multiple(() =>
        {
            Assert.That(status, Is.EqualTo(TicketStatus.Valid));
            Assert.That(n, Is.EqualTo(TicketIssuer.GetTicketLength("app-1", Client)));
            Assert.That(info.TicketId, Is.EqualTo(0xDEADBEEF_00000001UL));
            Assert.That(info.KeyId, Is.EqualTo(_keys.Active.Id));
            Assert.That(info.ExpiresUnixMs, Is.EqualTo(expires));
            Assert.That(expires, Is.EqualTo(Start.AddSeconds(30).ToUnixTimeMilliseconds()));
        });
    }

    [Test]
    public void Ticket_bytes_follow_the_documented_layout()
    {
        using var issuer = Issuer();
        var buffer = new byte[TicketIssuer.MaxTicketLength];
        var n = issuer.Issue(buffer, "app-1", Client, 0x0102030405060708UL, 0x1122334455667788L);
        var t = buffer[..n];

        Assert.Multiple(() =>
        {
            Assert.That(n, Is.EqualTo(1 + 4 + 8 + 8 + 16 + 1 + 4 + 1 + 5 + 32));
            Assert.That(t[0], Is.EqualTo(1), "version");
            Assert.That(t.AsSpan(1, 4).ToArray(), Is.EqualTo(new byte[] { 0, 0, 0, 1 }), "key id");
            Assert.That(t.AsSpan(5, 8).ToArray(), Is.EqualTo(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }), "ticket id");
            Assert.That(t.AsSpan(13, 8).ToArray(), Is.EqualTo(new byte[] { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 }), "expiry");
            Assert.That(t[37], Is.EqualTo(4), "family");
            Assert.That(t.AsSpan(38, 4).ToArray(), Is.EqualTo(Client.GetAddressBytes()), "client");
            Assert.That(t[42], Is.EqualTo(5), "server id length");
            Assert.That(System.Text.Encoding.UTF8.GetString(t, 43, 5), Is.EqualTo("app-1"));
        });
    }

    [Test]
    public void Mac_is_hmac_sha256_of_every_byte_before_it_on_every_thread()
    {
        using var issuer = Issuer();
        var nonces = new System.Collections.Concurrent.ConcurrentDictionary<string, bool>();
        Parallel.For(0, 64, i =>
        {
            var buffer = new byte[TicketIssuer.MaxTicketLength];
            var n = issuer.Issue(buffer, "app-" + i, i % 2 == 0 ? Client : IPAddress.Parse("fd00::" + (i + 1)), (ulong)i, out _);
            var expected = System.Security.Cryptography.HMACSHA256.HashData(_keys.Active.Secret, buffer.AsSpan(0, n - 32));
            Assert.That(buffer.AsSpan(n - 32, 32).ToArray(), Is.EqualTo(expected));
            Assert.That(nonces.TryAdd(Convert.ToHexString(buffer, 21, 16), true), Is.True, "nonces never repeat");
        });
    }

    [Test]
    public void Longest_ticket_fits_the_protocol_cap()
    {
        using var issuer = Issuer();
        var id = new string('s', 255);
        var v6 = IPAddress.Parse("fd00::1234");
        var ticket = Issue(issuer, id, v6);
        using var verifier = Verifier(configure: o => o.ServerId = id);

        Assert.That(ticket, Has.Length.EqualTo(TicketIssuer.MaxTicketLength));
        Assert.That(TicketIssuer.MaxTicketLength, Is.LessThanOrEqualTo(1024));
        Assert.That(verifier.Verify(ticket, v6), Is.EqualTo(TicketStatus.Valid));
    }

    [Test]
    public void Too_small_destination_is_refused()
    {
        using var issuer = Issuer();
        var small = new byte[TicketIssuer.GetTicketLength("app-1", Client) - 1];
        Assert.Throws<ArgumentException>(() => issuer.Issue(small, "app-1", Client, 1, out _));
        Assert.Throws<ArgumentException>(() => issuer.Issue(new byte[1024], "", Client, 1, out _));
        Assert.Throws<ArgumentException>(() => issuer.Issue(new byte[1024], new string('x', 256), Client, 1, out _));
    }

    [Test]
    public void Forged_mac_is_denied_as_bad_signature()
    {
        using var issuer = Issuer();
        using var verifier = Verifier();
        var ticket = Issue(issuer);
        ticket[^1] ^= 0x01;
        Assert.That(verifier.Verify(ticket, Client), Is.EqualTo(TicketStatus.BadSignature));
    }

    [Test]
    public void Altered_field_is_denied_as_bad_signature()
    {
        using var issuer = Issuer();
        using var verifier = Verifier();

        // Push the expiry an hour ahead, as a client wanting a longer ticket would.
        var ticket = Issue(issuer);
        ticket[13 + 4] ^= 0x40;
        Assert.That(verifier.Verify(ticket, Client), Is.EqualTo(TicketStatus.BadSignature));

        // Change the ticket id.
        ticket = Issue(issuer);
        ticket[12] ^= 0x01;
        Assert.That(verifier.Verify(ticket, Client), Is.EqualTo(TicketStatus.BadSignature));
    }

    [Test]
    public void Ticket_signed_with_another_secret_under_the_same_key_id_is_denied()
    {
        var otherSecret = TicketKeyRing.CreateNew(_clock); // also key id 1, different secret
        using var forger = Issuer(otherSecret);
        using var verifier = Verifier();
        Assert.That(verifier.Verify(Issue(forger), Client), Is.EqualTo(TicketStatus.BadSignature));
    }

    [Test]
    public void Expired_ticket_is_denied_after_the_clock_skew()
    {
        using var issuer = Issuer();
        using var verifier = Verifier();
        var first = Issue(issuer, ticketId: 1);
        var second = Issue(issuer, ticketId: 2);

        _clock.Advance(TimeSpan.FromSeconds(31)); // 1 s past expiry, inside the 2 s skew
        Assert.That(verifier.Verify(first, Client), Is.EqualTo(TicketStatus.Valid));

        _clock.Advance(TimeSpan.FromSeconds(1.5)); // 2.5 s past expiry
        Assert.That(verifier.Verify(second, Client), Is.EqualTo(TicketStatus.Expired));
    }

    [Test]
    public void Ticket_with_an_absurd_expiry_is_denied_even_when_signed()
    {
        using var issuer = Issuer();
        using var verifier = Verifier();
        var buffer = new byte[TicketIssuer.MaxTicketLength];
        var n = issuer.Issue(buffer, "app-1", Client, 7, Start.AddDays(30).ToUnixTimeMilliseconds());
        Assert.That(verifier.Verify(buffer.AsSpan(0, n), Client), Is.EqualTo(TicketStatus.Malformed));
    }

    [Test]
    public void Second_use_of_a_ticket_is_denied_as_replayed()
    {
        using var issuer = Issuer();
        using var verifier = Verifier();
        var ticket = Issue(issuer);

        Assert.That(verifier.Verify(ticket, Client), Is.EqualTo(TicketStatus.Valid));
        Assert.That(verifier.Verify(ticket, Client), Is.EqualTo(TicketStatus.Replayed));
        _clock.Advance(TimeSpan.FromSeconds(20));
        Assert.That(verifier.Verify(ticket, Client), Is.EqualTo(TicketStatus.Replayed));
    }

    [Test]
    public void Replay_cache_forgets_tickets_once_they_expired()
    {
        using var issuer = Issuer();
        using var verifier = Verifier();
        for (var i = 0; i < 100; i++)
        {
            Assert.That(verifier.Verify(Issue(issuer, ticketId: (ulong)i), Client), Is.EqualTo(TicketStatus.Valid));
        }

        Assert.That(verifier.UsedCount, Is.EqualTo(100));
        _clock.Advance(TimeSpan.FromSeconds(33));
        Assert.That(verifier.Verify(Issue(issuer, ticketId: 1000), Client), Is.EqualTo(TicketStatus.Valid));
        Assert.That(verifier.UsedCount, Is.EqualTo(1));
    }

    [Test]
    public void Full_replay_cache_never_lets_a_forgotten_ticket_through()
    {
        using var issuer = Issuer();
        using var verifier = Verifier(configure: o => o.ReplayCacheCapacity = 1024);
        var first = Issue(issuer, ticketId: 0);
        Assert.That(verifier.Verify(first, Client), Is.EqualTo(TicketStatus.Valid));
        for (var i = 1; i <= 1500; i++)
        {
            _clock.Advance(TimeSpan.FromMilliseconds(1));
            Assert.That(verifier.Verify(Issue(issuer, ticketId: (ulong)i), Client), Is.EqualTo(TicketStatus.Valid), $"ticket {i}");
        }

        Assert.That(verifier.UsedCount, Is.LessThanOrEqualTo(1024));
        // The first ticket was forgotten to make room; its replay must still be refused.
        Assert.That(verifier.Verify(first, Client), Is.Not.EqualTo(TicketStatus.Valid));
        _clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.That(verifier.Verify(Issue(issuer, ticketId: 9999), Client), Is.EqualTo(TicketStatus.Valid));
    }

    [Test]
    public void Ticket_from_another_client_address_is_denied()
    {
        using var issuer = Issuer();
        using var verifier = Verifier();
        var ticket = Issue(issuer);
        Assert.That(verifier.Verify(ticket, IPAddress.Parse("127.0.0.11")), Is.EqualTo(TicketStatus.WrongClient));
        Assert.That(verifier.Verify(ticket, null), Is.EqualTo(TicketStatus.WrongClient));
        Assert.That(verifier.Verify(ticket, IPAddress.IPv6Loopback), Is.EqualTo(TicketStatus.WrongClient));
        // The denials did not use the ticket up.
        Assert.That(verifier.Verify(ticket, Client), Is.EqualTo(TicketStatus.Valid));
    }

    [Test]
    public void Ipv4_mapped_ipv6_address_is_the_same_client()
    {
        using var issuer = Issuer();
        using var verifier = Verifier();
        Assert.That(verifier.Verify(Issue(issuer, ticketId: 1), Client.MapToIPv6()), Is.EqualTo(TicketStatus.Valid));
        Assert.That(verifier.Verify(Issue(issuer, client: Client.MapToIPv6(), ticketId: 2), Client), Is.EqualTo(TicketStatus.Valid));
    }

    [Test]
    public void Client_check_can_be_turned_off_for_nat()
    {
        using var issuer = Issuer();
        using var verifier = Verifier(configure: o => o.CheckClientAddress = false);
        Assert.That(verifier.Verify(Issue(issuer), IPAddress.Parse("192.0.2.7")), Is.EqualTo(TicketStatus.Valid));
    }

    [Test]
    public void Ticket_for_another_app_server_is_denied()
    {
        using var issuer = Issuer();
        using var verifier = Verifier();
        Assert.That(verifier.Verify(Issue(issuer, serverId: "app-2"), Client), Is.EqualTo(TicketStatus.WrongServer));
        Assert.That(verifier.Verify(Issue(issuer, serverId: "app-10"), Client), Is.EqualTo(TicketStatus.WrongServer));
    }

    [Test]
    public void Unknown_key_id_is_denied()
    {
        var verifierKeys = TicketKeyRing.CreateNew(_clock); // key 1
        var issuerKeys = verifierKeys.WithNewKey(activate: true, _clock).Without(1); // key 2 only
        using var issuer = Issuer(issuerKeys);
        using var verifier = Verifier(verifierKeys);
        Assert.That(verifier.Verify(Issue(issuer), Client), Is.EqualTo(TicketStatus.UnknownKey));
    }

    [Test]
    public void Rewritten_key_id_is_denied()
    {
        var keys = _keys.WithNewKey(activate: false, _clock); // keys 1 (active) and 2
        using var issuer = Issuer(keys);
        using var verifier = Verifier(keys);

        var ticket = Issue(issuer);
        ticket[4] = 2; // claims key 2, signed with key 1
        Assert.That(verifier.Verify(ticket, Client), Is.EqualTo(TicketStatus.BadSignature));

        ticket[4] = 9;
        Assert.That(verifier.Verify(ticket, Client), Is.EqualTo(TicketStatus.UnknownKey));
    }

    [Test]
    public void Truncated_or_padded_ticket_is_malformed_at_every_length()
    {
        using var issuer = Issuer();
        using var verifier = Verifier();
        var ticket = Issue(issuer);
        for (var n = 0; n < ticket.Length; n++)
        {
            Assert.That(verifier.Verify(ticket.AsSpan(0, n), Client), Is.EqualTo(TicketStatus.Malformed), $"length {n}");
        }

        Assert.That(verifier.Verify([.. ticket, 0], Client), Is.EqualTo(TicketStatus.Malformed));
        Assert.That(verifier.Verify(new byte[2000], Client), Is.EqualTo(TicketStatus.Malformed));
    }

    [Test]
    public void Wrong_version_family_or_server_id_length_is_malformed()
    {
        using var issuer = Issuer();
        using var verifier = Verifier();

        var t = Issue(issuer);
        t[0] = 2;
        Assert.That(verifier.Verify(t, Client), Is.EqualTo(TicketStatus.Malformed));

        t = Issue(issuer);
        t[37] = 5;
        Assert.That(verifier.Verify(t, Client), Is.EqualTo(TicketStatus.Malformed));

        t = Issue(issuer);
        t[37 + 1 + 4] = 200; // server id length runs past the end
        Assert.That(verifier.Verify(t, Client), Is.EqualTo(TicketStatus.Malformed));

        t = Issue(issuer);
        t[37 + 1 + 4] = 0;
        Assert.That(verifier.Verify(t, Client), Is.EqualTo(TicketStatus.Malformed));
    }

    [Test]
    public void Strict_mode_needs_a_matching_expect()
    {
        using var issuer = Issuer();
        using var verifier = Verifier(configure: o => o.RequireExpect = true);
        var buffer = new byte[TicketIssuer.MaxTicketLength];

        var n = issuer.Issue(buffer, "app-1", Client, 5, out var expires);
        Assert.That(verifier.Verify(buffer.AsSpan(0, n), Client), Is.EqualTo(TicketStatus.NotExpected));

        Assert.That(verifier.Expect(5, IPAddress.Parse("127.0.0.99"), expires), Is.True);
        Assert.That(verifier.Verify(buffer.AsSpan(0, n), Client), Is.EqualTo(TicketStatus.NotExpected), "expect for another client");

        Assert.That(verifier.Expect(5, Client, expires), Is.True);
        Assert.That(verifier.PendingExpects, Is.EqualTo(1));
        Assert.That(verifier.Verify(buffer.AsSpan(0, n), Client), Is.EqualTo(TicketStatus.Valid));
        Assert.That(verifier.PendingExpects, Is.Zero, "a used expect is consumed");
        Assert.That(verifier.Verify(buffer.AsSpan(0, n), Client), Is.EqualTo(TicketStatus.Replayed));
    }

    [Test]
    public void Expect_notices_expire_and_stay_bounded()
    {
        using var verifier = Verifier(configure: o => { o.RequireExpect = true; o.ExpectCapacity = 16; });
        var expires = Start.AddSeconds(30).ToUnixTimeMilliseconds();
        Assert.That(verifier.Expect(1, Client, Start.AddSeconds(-10).ToUnixTimeMilliseconds()), Is.False, "already expired");
        for (ulong i = 0; i < 100; i++)
        {
            verifier.Expect(i, Client, expires + (long)i);
        }

        Assert.That(verifier.PendingExpects, Is.EqualTo(16));
        _clock.Advance(TimeSpan.FromMinutes(1));
        verifier.Expect(1000, Client, _clock.Now.AddSeconds(30).ToUnixTimeMilliseconds());
        Assert.That(verifier.PendingExpects, Is.EqualTo(1));
    }

    [Test]
    public void Keys_rotate_without_refusing_tickets_in_flight()
    {
        var ring1 = _keys;                                   // {1*}
        var ring12 = ring1.WithNewKey(activate: false, _clock); // {1*, 2}: distributed first
        using var issuer = Issuer(ring1);
        using var verifier = Verifier(ring12);

        var old = Issue(issuer, ticketId: 1);
        issuer.UpdateKeys(ring12.WithActive(2));             // {1, 2*}
        var fresh = Issue(issuer, ticketId: 2);

        Assert.That(verifier.Verify(old, Client, out var oldInfo), Is.EqualTo(TicketStatus.Valid));
        Assert.That(verifier.Verify(fresh, Client, out var freshInfo), Is.EqualTo(TicketStatus.Valid));
        Assert.That((oldInfo.KeyId, freshInfo.KeyId), Is.EqualTo((1u, 2u)));

        var stale = Issue(new TicketIssuer(ring1, null, _clock), ticketId: 3);
        verifier.UpdateKeys(ring12.WithActive(2).Without(1)); // {2*}: old key retired
        Assert.That(verifier.Verify(stale, Client), Is.EqualTo(TicketStatus.UnknownKey));
        Assert.That(verifier.Verify(Issue(issuer, ticketId: 4), Client), Is.EqualTo(TicketStatus.Valid));
    }

    [Test]
    public void Every_verdict_is_counted_by_reason()
    {
        var counts = new Dictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (inst, l) =>
        {
            if (inst.Meter.Name == TicketMetrics.MeterName && inst.Name == "vip.tickets.verified")
            {
                l.EnableMeasurementEvents(inst);
            }
        };
        listener.SetMeasurementEventCallback<long>((inst, value, tags, state) =>
        {
            foreach (var t in tags)
            {
                if (t.Key == "vip.ticket.result")
                {
                    lock (counts)
                    {
                        counts[(string)t.Value!] = counts.GetValueOrDefault((string)t.Value!) + value;
                    }
                }
            }
        });
        listener.Start();

        using var issuer = Issuer();
        using var verifier = Verifier();
        var ticket = Issue(issuer);
        verifier.Verify(ticket, Client);
        verifier.Verify(ticket, Client);
        verifier.Verify(ticket.AsSpan(0, 10), Client);
        verifier.Verify(Issue(issuer, "other"), Client);

        Assert.That(counts, Is.EquivalentTo(new Dictionary<string, long> { ["ok"] = 1, ["Replayed"] = 1, ["Malformed"] = 1, ["WrongServer"] = 1 }));
    }

    [Test]
    public void Status_values_are_the_claim_denied_wire_codes()
    {
        Assert.Multiple(() =>
        {
            Assert.That((ushort)TicketStatus.BadSignature, Is.EqualTo(1));
            Assert.That((ushort)TicketStatus.Expired, Is.EqualTo(2));
            Assert.That((ushort)TicketStatus.Replayed, Is.EqualTo(3));
            Assert.That((ushort)TicketStatus.WrongClient, Is.EqualTo(4));
            Assert.That((ushort)TicketStatus.WrongServer, Is.EqualTo(5));
            Assert.That((ushort)TicketStatus.UnknownKey, Is.EqualTo(6));
            Assert.That((ushort)TicketStatus.Malformed, Is.EqualTo(7));
            Assert.That((ushort)TicketStatus.NotExpected, Is.EqualTo(8));
        });
    }

    [Test]
    public void Concurrent_claims_of_one_ticket_admit_exactly_one()
    {
        using var issuer = Issuer();
        using var verifier = Verifier();
        for (var round = 0; round < 20; round++)
        {
            var ticket = Issue(issuer, ticketId: (ulong)round);
            var results = new TicketStatus[8];
            Parallel.For(0, results.Length, i => results[i] = verifier.Verify(ticket, Client));
            Assert.That(results.Count(r => r == TicketStatus.Valid), Is.EqualTo(1));
            Assert.That(results.Count(r => r == TicketStatus.Replayed), Is.EqualTo(results.Length - 1));
        }
    }

    [Test]
    public void Verifier_options_are_validated()
    {
        Assert.Throws<ArgumentException>(() => Verifier(configure: o => o.ServerId = ""));
        Assert.Throws<ArgumentOutOfRangeException>(() => Verifier(configure: o => o.ClockSkew = TimeSpan.FromHours(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Verifier(configure: o => o.ReplayCacheCapacity = 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TicketIssuer(_keys, new TicketIssuerOptions { Lifetime = TimeSpan.Zero }));
    }
}
