using System.Net;
using CsCheck;
using Microsoft.Extensions.Time.Testing;
using Vip.Selection;

namespace Vip.Tests.Selection;

/// <summary>
/// Decisions that skip the walk over every candidate — least load's per-thread short list kept up to date from the
/// change log, power of two choices' draws from the bitmap — against explain's dry run, which walks every server:
/// through any mix of picks, heartbeats, drains, expiry and re-registration they must agree on who may be chosen.
/// </summary>
public class SelectionShortListTests
{
    private const int Servers = 150;   // more than a short list holds, so it runs short and is rebuilt
    private const int Capacity = 12;   // small, so picks fill servers up

    private static readonly string[] Requirements = ["", "rack=r1", "rack!=r2", "rack=r0:10", "rack in (r0,r1), rack=r1:5"];

    /// <summary>One step: 0–3 pick, 4 heartbeat, 5 drain, 6 let time pass, 7 re-register (a new snapshot).</summary>
    private sealed record Step(int Kind, int Server, int Value, int Requirement);

    private static readonly Gen<Step> Steps = Gen.Select(Gen.Int[0, 7], Gen.Int[0, Servers - 1], Gen.Int[0, Capacity], Gen.Int[0, Requirements.Length - 1], (k, s, v, r) => new Step(k, s, v, r));

    [Test]
    public void Every_pick_is_a_best_candidate_of_a_walk_over_all_servers()
    {
        Steps.Array[50, 400].Sample(steps =>
        {
            var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
            using var engine = new SelectionEngine(
                new SelectionOptions { PublishDelay = TimeSpan.Zero, HeartbeatInterval = TimeSpan.FromSeconds(1), MissedHeartbeats = 3, MaxAlternatives = 3 },
                time,
                new Random(7));
            for (int i = 0; i < Servers; i++)
            {
                engine.Register(Registration(i));
            }

            foreach (Step step in steps)
            {
                string id = $"s{step.Server:D3}";
                switch (step.Kind)
                {
                    case 4:
                        engine.Heartbeat(id, new ServerHeartbeat(0, step.Value, false));
                        break;
                    case 5:
                        engine.Heartbeat(id, new ServerHeartbeat(0, step.Value, true));
                        break;
                    case 6:
                        time.Advance(TimeSpan.FromMilliseconds(250 * step.Value));
                        break;
                    case 7:
                        engine.Deregister(id);
                        engine.Register(Registration(step.Server));
                        break;
                    default:
                        Check(engine, Requirements[step.Requirement]);
                        break;
                }
            }
        }, iter: 60);
    }

    [Test]
    public void Picks_spread_over_more_candidates_than_a_short_list_holds()
    {
        // Every server idle: the list holds 64 of them; after each has a ticket the others are the least loaded,
        // and the list must run short and be rebuilt rather than keep choosing among its own.
        var time = new FakeTimeProvider();
        using var engine = new SelectionEngine(new SelectionOptions { PublishDelay = TimeSpan.Zero, HeartbeatInterval = TimeSpan.FromMinutes(1) }, time, new Random(3));
        for (int i = 0; i < Servers; i++)
        {
            engine.Register(Registration(i));
        }

        for (int pick = 0; pick < Servers * 3; pick++)
        {
            Check(engine, "");
        }

        Assert.That(engine.Servers.Select(s => s.IssuedSinceHeartbeat).Distinct(), Is.EqualTo(new[] { 3 }), "three tickets each");
    }

    [Test]
    public void After_more_changes_than_the_log_keeps_the_pick_is_still_the_least_loaded()
    {
        using var f = new SelectionFixture(o => o.HeartbeatInterval = TimeSpan.FromMinutes(1));
        for (int i = 0; i < 100; i++)
        {
            f.Add($"s{i:D3}", capacity: 1000);
            f.Beat($"s{i:D3}", active: 500);
        }

        f.Beat("s007", active: 1);
        Assert.That(f.Pick().Server?.Id, Is.EqualTo("s007"), "the short list is built");

        // Far more heartbeats than the change log holds; the last one makes s042 the least loaded.
        for (int round = 0; round < (ChangeLog.Size / 100) + 2; round++)
        {
            for (int i = 0; i < 100; i++)
            {
                f.Beat($"s{i:D3}", active: 400 + ((round + i) % 50));
            }
        }

        f.Beat("s042", active: 0);
        Assert.That(f.Pick().Server?.Id, Is.EqualTo("s042"));
    }

    [Test]
    public void Power_of_two_choices_draws_from_the_best_preference_tier_and_spills_over_when_it_is_full()
    {
        // 100 servers, the even ones with ssd; "ssd:10" ranks them first. Draws must come from the ssd tier, spread
        // over it; once the tier is full, the walk takes over and finds the rest.
        using var f = new SelectionFixture(o => o.Policy = SelectionPolicy.PowerOfTwoChoices, seed: 9);
        for (int i = 0; i < 100; i++)
        {
            f.Add($"s{i:D3}", 1000, i % 2 == 0 ? ["ssd=yes"] : []);
        }

        var picked = new HashSet<string>();
        for (int n = 0; n < 200; n++)
        {
            SelectionResult r = f.Pick("ssd:10");
            string[] listed = [r.Server!.Id, .. Enumerable.Range(0, r.AlternativeCount).Select(a => r.GetAlternative(a).Id)];
            Assert.That(listed, Has.Length.EqualTo(3).And.Unique);
            Assert.That(listed.All(id => int.Parse(id[1..]) % 2 == 0), Is.True, $"every draw from the ssd tier: {string.Join(",", listed)}");
            picked.Add(r.Server.Id);
        }

        Assert.That(picked, Has.Count.GreaterThan(30), "draws spread over the tier");

        for (int i = 0; i < 100; i += 2)
        {
            f.Beat($"s{i:D3}", active: 1000);
        }

        SelectionResult spill = f.Pick("ssd:10");
        Assert.That(spill.IsSelected, Is.True);
        Assert.That(int.Parse(spill.Server!.Id[1..]) % 2, Is.EqualTo(1), "the ssd tier is full: the others take the work");
    }

    private static ServerRegistration Registration(int i) =>
        new($"s{i:D3}", new IPEndPoint(IPAddress.Loopback, 9000 + i), Capacity, SelectionFixture.Attrs($"rack=r{i % 3}"));

    /// <summary>Picks once and checks the choice and its alternatives against explain's walk just before it.</summary>
    private static void Check(SelectionEngine engine, string requirement)
    {
        SelectionRequest request = SelectionRequest.Create("c1", IPAddress.Loopback, "echo", null, requirement);
        ServerVerdict[] all = [.. engine.Explain(request).Servers];
        ServerVerdict[] kept = [.. all.Where(v => v.Kept)];
        SelectionResult r = engine.Select(request);
        if (kept.Length == 0)
        {
            Assert.That(r.IsSelected, Is.False, $"'{requirement}': nothing is kept, yet {r.Server?.Id} was chosen");
            return;
        }

        Assert.That(r.IsSelected, Is.True, $"'{requirement}': {kept.Length} kept, yet {r.Outcome}");
        Dictionary<string, ServerVerdict> byId = kept.ToDictionary(v => v.Server.Id);
        string[] chosen = [r.Server!.Id, .. Enumerable.Range(0, r.AlternativeCount).Select(a => r.GetAlternative(a).Id)];
        string[] strays = [.. chosen.Where(id => !byId.ContainsKey(id)).Select(id => all.Single(v => v.Server.Id == id)).Select(v => $"{v.Server.Id}: {v.Reason} {v.Detail}")];
        Assert.That(strays, Is.Empty, $"'{requirement}': every choice is a candidate ({string.Join(",", chosen)})");
        Assert.That(chosen, Is.Unique);
        Assert.That(chosen, Has.Length.EqualTo(Math.Min(kept.Length, 1 + engine.Options.MaxAlternatives)));

        // Best first: higher preference score, then lower load; what was not listed is no better than the last listed.
        static (int, double) Rank(ServerVerdict v) => (-v.PreferenceScore, v.Load);
        (int, double)[] listed = [.. chosen.Select(id => Rank(byId[id]))];
        Assert.That(listed, Is.Ordered, $"'{requirement}': the choice, then alternatives in order");
        (int, double) worstListed = listed[^1];
        foreach (ServerVerdict v in kept.Where(v => !chosen.Contains(v.Server.Id)))
        {
            Assert.That(Rank(v).CompareTo(worstListed), Is.GreaterThanOrEqualTo(0), $"'{requirement}': {v.Server.Id} ({Rank(v)}) beats the listed {string.Join(",", chosen)}");
        }
    }
}
