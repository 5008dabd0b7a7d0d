using Vip.Selection;

namespace Vip.Tests.Selection;

/// <summary>Preferences and the four policies, with seeded randomness.</summary>
public class SelectionRankingTests
{
    [Test]
    public void Least_load_picks_the_lowest_active_plus_issued_over_capacity_and_ranks_the_rest()
    {
        using var f = new SelectionFixture(o => o.MaxAlternatives = 3);
        f.Add("a", 100);
        f.Add("b", 200);
        f.Add("c", 100);
        f.Add("d", 100);
        f.Beat("a", active: 30);
        f.Beat("b", active: 50); // 0.25
        f.Beat("c", active: 20);
        f.Beat("d", active: 90);

        SelectionResult r = f.Pick();

        Assert.That(r.Server!.Id, Is.EqualTo("c"));
        Assert.That(Enumerable.Range(0, r.AlternativeCount).Select(i => r.GetAlternative(i).Id), Is.EqualTo(new[] { "b", "a", "d" }));
    }

    [Test]
    public void Issued_tickets_count_as_load_so_a_burst_spreads()
    {
        using var f = new SelectionFixture();
        f.Add("a", 10);
        f.Add("b", 10);

        var counts = Enumerable.Range(0, 10).Select(_ => f.Pick().Server!.Id).GroupBy(id => id).ToDictionary(g => g.Key, g => g.Count());

        Assert.That(counts["a"], Is.EqualTo(5));
        Assert.That(counts["b"], Is.EqualTo(5));
        Assert.That(f.Engine.Servers.Sum(s => s.IssuedSinceHeartbeat), Is.EqualTo(10));
    }

    [Test]
    public void Heartbeat_resets_the_issued_count()
    {
        using var f = new SelectionFixture();
        ServerEntry a = f.Add("a", 10);
        f.Pick();
        f.Pick();

        f.Beat("a", active: 1);

        Assert.That(a.IssuedSinceHeartbeat, Is.Zero);
        Assert.That(a.ActiveTasks, Is.EqualTo(1));
        Assert.That(a.Load, Is.EqualTo(0.1));
    }

    [Test]
    public void Equal_loads_are_broken_at_random_but_reproducibly_with_a_seed()
    {
        string[] Run(int seed)
        {
            using var f = new SelectionFixture(seed: seed);
            for (int i = 0; i < 8; i++)
            {
                f.Add($"s{i}", 1000);
            }

            // Heartbeats between picks keep every load at zero: each pick is a pure tie-break.
            return [.. Enumerable.Range(0, 30).Select(_ =>
            {
                string id = f.Pick().Server!.Id;
                f.Beat(id);
                return id;
            })];
        }

        string[] first = Run(7);

        Assert.That(Run(7), Is.EqualTo(first));
        Assert.That(Run(8), Is.Not.EqualTo(first));
        Assert.That(first.Distinct().Count(), Is.GreaterThan(3), "ties do not always fall the same way");
    }

    [Test]
    public void Preference_ranks_before_load_by_default()
    {
        using var f = new SelectionFixture();
        f.Add("eu", 4, "region=eu");
        f.Add("us", 4, "region=us");
        f.Beat("eu", active: 2);

        Assert.That(f.Pick("region=eu:10").Server!.Id, Is.EqualTo("eu"));
        Assert.That(f.Pick("region=eu:10").Server!.Id, Is.EqualTo("eu"));
        Assert.That(f.Pick("region=eu:10").Server!.Id, Is.EqualTo("us"), "the preferred server is full: spill over");
    }

    [Test]
    public void In_tie_break_mode_preference_only_breaks_load_ties()
    {
        using var f = new SelectionFixture(o => o.PreferenceMode = PreferenceMode.TieBreak);
        f.Add("eu", 100, "region=eu");
        f.Add("us", 100, "region=us");

        Assert.That(f.Pick("region=eu:10").Server!.Id, Is.EqualTo("eu"), "equal loads: preference decides");
        Assert.That(f.Pick("region=eu:10").Server!.Id, Is.EqualTo("us"), "eu is now more loaded");
    }

    [Test]
    public void Preference_weights_add_up()
    {
        using var f = new SelectionFixture();
        f.Add("region-only", 100, "region=eu");
        f.Add("gpu-only", 100, "gpu=a100");
        f.Add("both", 1, "region=eu", "gpu=a100");

        Assert.That(f.Pick("region=eu:10, gpu:30").Server!.Id, Is.EqualTo("both"));
        Assert.That(f.Pick("region=eu:10, gpu:30").Server!.Id, Is.EqualTo("gpu-only"));
        Assert.That(f.Pick("region=eu:40, gpu:30").Server!.Id, Is.EqualTo("region-only"));
    }

    [TestCase("region!=us:5", "eu")]
    [TestCase("region in (eu,ap):5", "eu")]
    [TestCase("region notin (eu):5", "us")]
    [TestCase("!gpu:5", "eu")]
    [TestCase("cores>=16:5", "eu")]
    public void Preferences_accept_every_operator(string requirement, string expected)
    {
        using var f = new SelectionFixture();
        f.Add("eu", 100, "region=eu", "cores=16");
        f.Add("us", 100, "region=us", "cores=8", "gpu=t4");
        f.Beat(expected, active: 50);

        Assert.That(f.Pick(requirement).Server!.Id, Is.EqualTo(expected));
    }

    [Test]
    public void Client_attributes_add_configured_preferences()
    {
        using var f = new SelectionFixture(o => o.ClientPreferences = new Dictionary<string, int> { ["region"] = 20 });
        f.Add("eu", 100, "region=eu");
        f.Add("us", 100, "region=us");
        f.Beat("us", active: 50);
        f.Client("american", "region=us");

        Assert.That(f.Pick(client: "american").Server!.Id, Is.EqualTo("us"));
        Assert.That(f.Pick(client: "other").Server!.Id, Is.EqualTo("eu"));
        Assert.That(f.Explain(client: "american").Servers.Single(v => v.Server.Id == "us").PreferenceScore, Is.EqualTo(20));
    }

    [Test]
    public void Power_of_two_choices_never_picks_the_most_loaded_server_and_varies()
    {
        using var f = new SelectionFixture(o => o.Policy = SelectionPolicy.PowerOfTwoChoices, seed: 3);
        for (int i = 0; i < 8; i++)
        {
            f.Add($"s{i}", 100);
        }

        var picked = new HashSet<string>();
        for (int n = 0; n < 200; n++)
        {
            for (int i = 0; i < 8; i++)
            {
                f.Beat($"s{i}", active: 10 * (i + 1)); // s7 is the most loaded, loads stay fixed
            }

            picked.Add(f.Pick().Server!.Id);
        }

        Assert.That(picked, Does.Not.Contain("s7"));
        Assert.That(picked, Has.Count.GreaterThan(3));
    }

    [Test]
    public void Power_of_two_choices_with_two_servers_always_takes_the_less_loaded()
    {
        using var f = new SelectionFixture(o => o.Policy = SelectionPolicy.PowerOfTwoChoices, seed: 5);
        f.Add("busy", 1000);
        f.Add("idle", 1000);
        f.Beat("busy", active: 500);

        for (int i = 0; i < 50; i++)
        {
            Assert.That(f.Pick().Server!.Id, Is.EqualTo("idle"));
        }
    }

    [Test]
    public void Power_of_two_choices_is_reproducible_with_a_seed()
    {
        string Run()
        {
            using var f = new SelectionFixture(o => o.Policy = SelectionPolicy.PowerOfTwoChoices, seed: 11);
            for (int i = 0; i < 10; i++)
            {
                f.Add($"s{i}", 1000);
            }

            return string.Join(",", Enumerable.Range(0, 40).Select(_ => f.Pick().Server!.Id));
        }

        string first = Run();

        Assert.That(Run(), Is.EqualTo(first));
    }

    [Test]
    public void Weighted_round_robin_follows_the_weight_attribute_exactly()
    {
        using var f = new SelectionFixture(o => o.Policy = SelectionPolicy.WeightedRoundRobin);
        f.Add("w1", 10_000, "weight=1");
        f.Add("w3", 10_000, "weight=3");
        f.Add("w4", 10_000, "weight=4");

        var counts = Enumerable.Range(0, 800).Select(_ => f.Pick().Server!.Id).GroupBy(id => id).ToDictionary(g => g.Key, g => g.Count());

        Assert.That(counts["w1"], Is.InRange(99, 101));
        Assert.That(counts["w3"], Is.InRange(299, 301));
        Assert.That(counts["w4"], Is.InRange(399, 401));
    }

    [Test]
    public void Weighted_round_robin_interleaves_instead_of_bursting()
    {
        using var f = new SelectionFixture(o => o.Policy = SelectionPolicy.WeightedRoundRobin);
        f.Add("a", 10_000);
        f.Add("b", 10_000);

        string[] picks = [.. Enumerable.Range(0, 20).Select(_ => f.Pick().Server!.Id)];

        for (int i = 1; i < picks.Length; i++)
        {
            Assert.That(picks[i], Is.Not.EqualTo(picks[i - 1]), string.Join(",", picks));
        }
    }

    [Test]
    public void Weighted_round_robin_falls_back_to_capacity()
    {
        using var f = new SelectionFixture(o => o.Policy = SelectionPolicy.WeightedRoundRobin);
        f.Add("small", 1000);
        f.Add("large", 3000);

        int large = Enumerable.Range(0, 400).Count(_ => f.Pick().Server!.Id == "large");

        Assert.That(large, Is.InRange(299, 301));
    }

    [Test]
    public void New_server_under_weighted_round_robin_does_not_take_a_burst()
    {
        using var f = new SelectionFixture(o => o.Policy = SelectionPolicy.WeightedRoundRobin);
        f.Add("old1", 10_000);
        f.Add("old2", 10_000);
        for (int i = 0; i < 1000; i++)
        {
            f.Pick();
        }

        f.Add("new", 10_000);
        int fresh = Enumerable.Range(0, 30).Count(_ => f.Pick().Server!.Id == "new");

        Assert.That(fresh, Is.InRange(9, 11));
    }

    [Test]
    public void Client_affinity_keeps_a_client_on_one_server_and_spreads_clients()
    {
        using var f = new SelectionFixture(o => o.Policy = SelectionPolicy.ClientAffinity);
        for (int i = 0; i < 6; i++)
        {
            f.Add($"s{i}", 10_000);
        }

        Assert.That(f.Chosen(20, client: "alice"), Has.Length.EqualTo(1));
        var homes = Enumerable.Range(0, 40).Select(c => f.Pick(client: $"client{c}").Server!.Id).ToHashSet();
        Assert.That(homes, Has.Count.GreaterThan(3));
    }

    [Test]
    public void Client_affinity_moves_only_the_clients_of_a_server_that_leaves()
    {
        using var f = new SelectionFixture(o => o.Policy = SelectionPolicy.ClientAffinity);
        for (int i = 0; i < 6; i++)
        {
            f.Add($"s{i}", 10_000);
        }

        string[] clients = [.. Enumerable.Range(0, 60).Select(c => $"client{c}")];
        Dictionary<string, string> before = clients.ToDictionary(c => c, c => f.Pick(client: c).Server!.Id);
        string gone = before["client0"];

        f.Engine.Deregister(gone);
        Dictionary<string, string> after = clients.ToDictionary(c => c, c => f.Pick(client: c).Server!.Id);

        Assert.That(after.Values, Does.Not.Contain(gone));
        Assert.That(clients.Where(c => before[c] != gone).All(c => after[c] == before[c]), Is.True);
    }

    [Test]
    public void Client_affinity_is_the_same_on_every_engine()
    {
        string Home(int seed)
        {
            using var f = new SelectionFixture(o => o.Policy = SelectionPolicy.ClientAffinity, seed);
            for (int i = 0; i < 9; i++)
            {
                f.Add($"s{i}", 100);
            }

            return f.Pick(client: "bob").Server!.Id;
        }

        Assert.That(Home(2), Is.EqualTo(Home(99)));
    }

    [Test]
    public void Client_affinity_skips_a_full_home_server()
    {
        using var f = new SelectionFixture(o => o.Policy = SelectionPolicy.ClientAffinity);
        for (int i = 0; i < 4; i++)
        {
            f.Add($"s{i}", 1);
        }

        string home = f.Pick(client: "carol").Server!.Id;
        string next = f.Pick(client: "carol").Server!.Id;

        Assert.That(next, Is.Not.EqualTo(home));
    }

    [Test]
    public void Alternatives_are_distinct_and_capped()
    {
        using var f = new SelectionFixture(o => o.MaxAlternatives = 3);
        for (int i = 0; i < 6; i++)
        {
            f.Add($"s{i}");
        }

        SelectionResult r = f.Pick();
        string[] all = [r.Server!.Id, .. Enumerable.Range(0, r.AlternativeCount).Select(i => r.GetAlternative(i).Id)];

        Assert.That(r.AlternativeCount, Is.EqualTo(3));
        Assert.That(all.Distinct().Count(), Is.EqualTo(4));
        Assert.Throws<ArgumentOutOfRangeException>(() => r.GetAlternative(3));
    }

    [Test]
    public void Alternatives_are_fewer_when_candidates_are_few()
    {
        using var f = new SelectionFixture(o => o.MaxAlternatives = 8);
        f.Add("a");
        f.Add("b");

        Assert.That(f.Pick().AlternativeCount, Is.EqualTo(1));
    }
}
