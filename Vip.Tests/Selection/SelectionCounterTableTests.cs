using System.Net;
using Vip.Selection;

namespace Vip.Tests.Selection;

/// <summary>
/// The counter table (one slot per server, reused after a deregistration), the per-word preference bitmaps and
/// the byte-keyed memos of requirements and clients: each shortcut must give the answer of the long way.
/// </summary>
public class SelectionCounterTableTests
{
    [Test]
    public void Deregistered_server_whose_slot_went_to_a_new_server_is_not_chosen_from_an_older_snapshot()
    {
        using var f = new SelectionFixture();
        ServerEntry a = f.Add("a");
        f.Add("b");
        f.Beat("b", active: 50);
        ServerSet older = f.Engine.Servers;

        Assert.That(f.Engine.Deregister("a"), Is.True);
        ServerEntry c = f.Add("c");
        Assert.That(c.Live.Slot, Is.EqualTo(a.Live.Slot), "the new server has the freed slot (else this test proves nothing)");

        // The older snapshot still lists "a" at the slot where "c" (idle, up) now keeps its counters.
        for (int i = 0; i < 5; i++)
        {
            SelectionResult r = f.Engine.SelectOn(older, SelectionRequest.Create("c1", IPAddress.Loopback, "echo", null, null));
            Assert.That(r.Server?.Id, Is.EqualTo("b"));
            Assert.That(r.AlternativeCount, Is.Zero);
        }

        Assert.That(a.State, Is.EqualTo(ServerState.Unknown));
        Assert.That(a.IssuedSinceHeartbeat, Is.Zero);
        Assert.That(c.IssuedSinceHeartbeat, Is.Zero, "tickets of the older snapshot went to b only");
        Assert.That(f.Pick().Server?.Id, Is.EqualTo("c"), "the current snapshot sees c on its own counters");
    }

    [Test]
    public void Servers_after_a_gap_in_the_slots_are_ranked_on_their_own_counters()
    {
        using var f = new SelectionFixture();
        int[] active = [5, 9, 7, 0, 8, 1, 6, 4, 3, 2];
        for (int i = 0; i < active.Length; i++)
        {
            f.Add($"s{i}", capacity: 100);
            f.Beat($"s{i}", active: active[i]);
        }

        // s3 and s5 (the two least loaded) leave: the snapshot maps indices to slots with gaps.
        f.Engine.Deregister("s3");
        f.Engine.Deregister("s5");
        Assert.That(f.Engine.Servers.SlotMap, Is.Not.Null);
        SelectionResult r = f.Pick();
        Assert.That(r.Server?.Id, Is.EqualTo("s9"), "active 2 is now the least load");
        Assert.That(Enumerable.Range(0, r.AlternativeCount).Select(i => r.GetAlternative(i).Id), Is.EqualTo(new[] { "s8", "s7" }));
        Assert.That(f.Engine.Servers.TryGetServer("s9", out ServerEntry? s9) ? s9.IssuedSinceHeartbeat : -1, Is.EqualTo(1));

        // New servers fill the gaps; the snapshot walks slots in order again.
        f.Add("n1");
        f.Add("n2");
        Assert.That(f.Engine.Servers.SlotMap, Is.Null);
        Assert.That(f.Engine.Servers.Select(s => s.Id), Is.EqualTo(new[] { "s0", "s1", "s2", "n1", "s4", "n2", "s6", "s7", "s8", "s9" }));
        f.Beat("n1", active: 10);
        f.Beat("n2", active: 0);
        Assert.That(f.Pick().Server?.Id, Is.EqualTo("n2"));
        Assert.That(f.Kept(), Has.Length.EqualTo(10));
    }

    [Test]
    public void Servers_beyond_one_chunk_of_the_counter_table_are_candidates()
    {
        using var f = new SelectionFixture();
        int n = LiveTable.ChunkSize * 2 + 70;
        f.Engine.RegisterMany(
            Enumerable.Range(0, n).Select(i => new ServerRegistration($"s{i:D5}", new IPEndPoint(IPAddress.Loopback, 9000), 1000, SelectionFixture.Attrs($"rack=r{i % 7}"))),
            ServerState.Up);
        for (int i = 0; i < n; i++)
        {
            f.Beat($"s{i:D5}", active: i == n - 3 ? 0 : 500);
        }

        Assert.That(f.Pick("rack=r" + ((n - 3) % 7)).Server?.Id, Is.EqualTo($"s{n - 3:D5}"));
    }

    [TestCase(PreferenceMode.ScoreFirst)]
    [TestCase(PreferenceMode.TieBreak)]
    public void Preferences_held_by_few_servers_score_like_common_ones(PreferenceMode mode)
    {
        // 2 servers in 100 have gpu: its posting is a member list, not a bitmap.
        using var f = new SelectionFixture(o => o.PreferenceMode = mode);
        for (int i = 0; i < 100; i++)
        {
            f.Add($"s{i:D3}", 100, i is 17 or 83 ? ["gpu=yes", "ssd=yes"] : i % 2 == 0 ? ["ssd=yes"] : []);
            f.Beat($"s{i:D3}", active: i is 17 or 83 ? 20 : 10);
        }

        ServerSet set = f.Engine.Servers;
        Assert.That(set.Keys["gpu"].Exists.Dense, Is.Null, "the posting must be sparse for this test");

        string[] expectedGpu = mode == PreferenceMode.ScoreFirst ? ["s017", "s083"] : [];
        string[] chosen = f.Chosen(6, "gpu=yes:50, ssd:10");
        if (mode == PreferenceMode.ScoreFirst)
        {
            Assert.That(chosen, Is.EqualTo(expectedGpu), "score first: the two gpu servers, though more loaded");
            Assert.That(f.Chosen(6, "!gpu:50"), Has.None.AnyOf("s017", "s083"));
            Assert.That(f.Chosen(6, "!gpu:50, ssd:10").All(id => int.Parse(id[1..]) % 2 == 0), Is.True, "no gpu, and ssd");
        }
        else
        {
            Assert.That(chosen, Has.None.AnyOf("s017", "s083"), "tie break: load first");
            Assert.That(chosen.All(id => int.Parse(id[1..]) % 2 == 0), Is.True, "equal loads: ssd breaks the tie");
        }
    }

    [Test]
    public void Requirements_alike_at_both_ends_are_told_apart()
    {
        using var f = new SelectionFixture();
        f.Add("A", 1000, "region=x", "zone=a1", "cores=4");
        f.Add("B", 1000, "region=x", "zone=a2", "cores=4");
        string first = "region=x, zone=a1, cores>=1";
        string second = first.Replace("a1", "a2", StringComparison.Ordinal);
        for (int i = 0; i < 4; i++)
        {
            Assert.That(f.Pick(first).Server?.Id, Is.EqualTo("A"));
            Assert.That(f.Pick(second).Server?.Id, Is.EqualTo("B"));
        }

        Assert.That(f.Engine.Requirements.Misses, Is.EqualTo(2));
    }

    [Test]
    public void Clients_alike_at_both_ends_are_told_apart()
    {
        using var f = new SelectionFixture(o => o.BindingKeys = ["pool"]);
        f.Add("G", 1000, "pool=gold");
        f.Add("S", 1000, "pool=silver");
        f.Client("tenantxx-1-suffix00", "pool=gold");
        f.Client("tenantxx-2-suffix00", "pool=silver");
        for (int i = 0; i < 4; i++)
        {
            Assert.That(f.Pick(client: "tenantxx-1-suffix00").Server?.Id, Is.EqualTo("G"));
            Assert.That(f.Pick(client: "tenantxx-2-suffix00").Server?.Id, Is.EqualTo("S"));
            Assert.That(f.Pick(client: "tenantxx-3-suffix00").Outcome, Is.EqualTo(SelectionOutcome.NoMatchingServer), "unknown: unbound, and both servers are reserved");
        }

        // A client changed after it was looked up: the next snapshot has its new record.
        f.Client("tenantxx-1-suffix00", "pool=silver");
        Assert.That(f.Pick(client: "tenantxx-1-suffix00").Server?.Id, Is.EqualTo("S"));
    }

    [TestCase(1)]
    [TestCase(777)]
    [TestCase(5000)]
    public void Expiry_is_exact_to_the_clock_tick_although_the_walk_compares_coarse_time(long offsetTicks)
    {
        // The walk compares heartbeat times in units of thousands of ticks; one tick past the timeout is almost
        // always in the same unit as the timeout, which only the exact check of the short list tells apart.
        using var f = new SelectionFixture(o =>
        {
            o.HeartbeatInterval = TimeSpan.FromSeconds(1);
            o.MissedHeartbeats = 3;
        });
        f.Time.Advance(TimeSpan.FromTicks(offsetTicks));
        f.Add("idle");
        f.Add("busy");
        f.Beat("busy", active: 50);
        TimeSpan expiry = f.Options.ExpireAfter;
        Assert.That(f.Time.TimestampFrequency, Is.EqualTo(TimeSpan.TicksPerSecond), "the fake clock counts TimeSpan ticks");

        f.Time.Advance(expiry - TimeSpan.FromSeconds(1));
        f.Beat("busy", active: 50);
        f.Time.Advance(TimeSpan.FromSeconds(1));
        SelectionResult atTimeout = f.Pick();
        Assert.That(atTimeout.Server?.Id, Is.EqualTo("idle"), "heard exactly the timeout ago: still up");
        SelectionEngine.Release(atTimeout);

        f.Time.Advance(TimeSpan.FromTicks(1));
        SelectionResult r = f.Pick();
        Assert.That(r.Server?.Id, Is.EqualTo("busy"), "one tick later: expired");
        Assert.That(r.AlternativeCount, Is.Zero);
        Assert.That(RankWord.Key(f.Engine.Servers[0].Live.Rank), Is.EqualTo(RankWord.Down), "found expired: out until heard again");

        f.Beat("idle");
        Assert.That(f.Pick().Server?.Id, Is.EqualTo("idle"));
    }

    [Test]
    public void A_server_silent_for_weeks_stays_out_although_its_coarse_heartbeat_time_wraps_round()
    {
        using var f = new SelectionFixture(o =>
        {
            o.HeartbeatInterval = TimeSpan.FromSeconds(1);
            o.MissedHeartbeats = 3;
        });
        ServerEntry silent = f.Add("silent");
        f.Add("busy");

        // 2^32 units later the silent server's 32-bit time reads as "just now" again.
        int shift = f.Engine.HeardShift;
        f.Time.Advance(TimeSpan.FromTicks((1L << 32) << shift));
        f.Beat("busy", active: 50);
        uint since = RankWord.Heard(f.Time.GetTimestamp() - (long)(f.Options.ExpireAfter.TotalSeconds * f.Time.TimestampFrequency), shift);
        ulong unmarked = (ulong)RankWord.Heard(silent.Live.LastHeardTimestamp, shift) << 32;
        Assert.That(RankWord.IsExpired(unmarked, since), Is.False, "the wrapped time reads as recent (else this test proves nothing)");
        Assert.That(RankWord.Key(silent.Live.Rank), Is.EqualTo(RankWord.Down), "the sweep marked it long ago");
        Assert.That(f.Pick().Server?.Id, Is.EqualTo("busy"));

        f.Beat("silent");
        Assert.That(f.Pick().Server?.Id, Is.EqualTo("silent"), "heard again: back");
    }

    [Test]
    public void Rank_words_end_equal_to_the_counters_after_racing_heartbeats_and_tickets()
    {
        using var f = new SelectionFixture(o => o.HeartbeatInterval = TimeSpan.FromMinutes(1));
        ServerEntry a = f.Add("a", capacity: 1_000_000);
        int shift = f.Engine.HeardShift;
        const int Rounds = 3_000;
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        int stale = 0, rounds = 0;

        // Each round, two threads count tickets (and take some back) while a third heartbeats with new figures, all
        // starting together; when they are done the word must say what the counters say (fails when any writer
        // leaves the word behind). The narrowest race, a stale write landing after another writer's check, is rarely
        // hit this way; ServerLive.Refresh argues why its write-then-check closes it.
        using var start = new Barrier(4);
        using var done = new Barrier(4);
        bool stop = false;
        Thread[] writers = [.. Enumerable.Range(0, 3).Select(t => new Thread(() =>
        {
            for (int round = 0; ; round++)
            {
                start.SignalAndWait();
                if (Volatile.Read(ref stop))
                {
                    return;
                }

                for (int i = 0; i < 20; i++)
                {
                    if (t == 2)
                    {
                        f.Engine.Heartbeat("a", new ServerHeartbeat(0, (round * 31 + i) % 1000, (round + i) % 7 == 0));
                    }
                    else
                    {
                        a.Live.Issue();
                        if ((i & 1) == 0)
                        {
                            a.Live.Unissue();
                        }
                    }
                }

                done.SignalAndWait();
            }
        }) { IsBackground = true })];
        foreach (Thread w in writers)
        {
            w.Start();
        }

        for (; rounds < Rounds && deadline.Elapsed < TimeSpan.FromSeconds(10); rounds++)
        {
            start.SignalAndWait();
            done.SignalAndWait();
            if (a.Live.Rank != RankWord.Compose(ref a.Live.Counters, a.Live.Removed, shift))
            {
                stale++;
            }
        }

        Volatile.Write(ref stop, true);
        start.SignalAndWait();
        foreach (Thread w in writers)
        {
            w.Join();
        }

        Assert.That(rounds, Is.GreaterThan(100), "too few rounds to mean anything");
        Assert.That(stale, Is.Zero, $"rounds whose rank word disagreed with the counters, of {rounds}");
    }
}
