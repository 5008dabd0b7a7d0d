using System.Net;
using Vip.Selection;

namespace Vip.Tests.Selection;

/// <summary>Filters: every operator, bindings, network rules, kinds, unknown clients.</summary>
public class SelectionMatrixTests
{
    private static SelectionFixture Fleet()
    {
        var f = new SelectionFixture();
        f.Add("s1", 100, "region=eu", "tier=gold", "cores=8", "gpu=a100");
        f.Add("s2", 100, "region=eu", "tier=silver", "cores=16");
        f.Add("s3", 100, "region=us", "tier=gold", "cores=4", "gpu=t4");
        f.Add("s4", 100, "region=us", "tier=bronze", "cores=32");
        f.Add("s5", 100, "region=ap", "cores=big");
        f.Add("s6", 100);
        return f;
    }

    [TestCase("", "s1,s2,s3,s4,s5,s6")]
    [TestCase("region=eu", "s1,s2")]
    [TestCase("region!=eu", "s3,s4,s5,s6")]
    [TestCase("tier in (gold,silver)", "s1,s2,s3")]
    [TestCase("tier notin (gold,silver)", "s4,s5,s6")]
    [TestCase("gpu", "s1,s3")]
    [TestCase("!gpu", "s2,s4,s5,s6")]
    [TestCase("cores>8", "s2,s4")]
    [TestCase("cores>=8", "s1,s2,s4")]
    [TestCase("cores>=8.0", "s1,s2,s4")]
    [TestCase("cores<8", "s3")]
    [TestCase("cores<=8", "s1,s3")]
    [TestCase("cores>=4, cores<=16", "s1,s2,s3")]
    [TestCase("region=eu, cores>8", "s2")]
    [TestCase("region in (eu,us), !gpu, cores>=16", "s2,s4")]
    [TestCase("tier=gold, tier!=gold", "")]
    [TestCase("region=mars", "")]
    [TestCase("nosuchkey", "")]
    [TestCase("!nosuchkey", "s1,s2,s3,s4,s5,s6")]
    public void Requirement_keeps_exactly_the_matching_servers(string requirement, string expected)
    {
        using SelectionFixture f = Fleet();
        string[] want = expected.Length == 0 ? [] : expected.Split(',');

        Assert.That(f.Kept(requirement), Is.EqualTo(want), "explain");
        if (want.Length == 0)
        {
            Assert.That(f.Pick(requirement).Outcome, Is.EqualTo(SelectionOutcome.NoMatchingServer));
        }
        else
        {
            // Least load spreads the picks over every candidate; the indexed path must reach exactly these.
            Assert.That(f.Chosen(want.Length * 4, requirement), Is.EqualTo(want), "select");
        }
    }

    [Test]
    public void Preference_only_requirement_keeps_every_server_but_picks_the_preferred_ones()
    {
        using SelectionFixture f = Fleet();

        Assert.That(f.Kept("region=eu:50"), Is.EqualTo(new[] { "s1", "s2", "s3", "s4", "s5", "s6" }));
        Assert.That(f.Chosen(8, "region=eu:50"), Is.EqualTo(new[] { "s1", "s2" }));
    }

    private static SelectionFixture Pools(bool reserved = true)
    {
        var f = new SelectionFixture(o =>
        {
            o.BindingKeys = ["pool"];
            o.ReservedBindings = reserved;
        });
        f.Add("g1", 100, "pool=gold");
        f.Add("g2", 100, "pool=gold");
        f.Add("s1", 100, "pool=silver");
        f.Add("n1", 100);
        f.Client("gold-client", "pool=gold");
        f.Client("plain-client", "region=eu");
        f.Client("platinum-client", "pool=platinum");
        return f;
    }

    [Test]
    public void Client_bound_to_a_pool_gets_only_servers_of_that_pool()
    {
        using SelectionFixture f = Pools();

        Assert.That(f.Kept(client: "gold-client"), Is.EqualTo(new[] { "g1", "g2" }));
        Assert.That(f.Chosen(8, client: "gold-client"), Is.EqualTo(new[] { "g1", "g2" }));
    }

    [Test]
    public void Unbound_client_does_not_get_reserved_pool_servers()
    {
        using SelectionFixture f = Pools();

        Assert.That(f.Chosen(8, client: "plain-client"), Is.EqualTo(new[] { "n1" }));
        ServerVerdict g1 = f.Explain(client: "plain-client").Servers.Single(v => v.Server.Id == "g1");
        Assert.That(g1.Reason, Is.EqualTo(DropReason.BindingMismatch));
        Assert.That(g1.Detail, Is.EqualTo("pool: server is reserved for gold, client has none"));
    }

    [Test]
    public void Without_reservation_unbound_clients_use_any_server_but_bound_ones_stay_in_their_pool()
    {
        using SelectionFixture f = Pools(reserved: false);

        Assert.That(f.Chosen(16, client: "plain-client"), Is.EqualTo(new[] { "g1", "g2", "n1", "s1" }));
        Assert.That(f.Chosen(8, client: "gold-client"), Is.EqualTo(new[] { "g1", "g2" }));
    }

    [Test]
    public void Server_without_the_binding_key_is_not_a_candidate_for_a_bound_client()
    {
        using SelectionFixture f = Pools(reserved: false);

        ServerVerdict n1 = f.Explain(client: "gold-client").Servers.Single(v => v.Server.Id == "n1");

        Assert.That(n1.Reason, Is.EqualTo(DropReason.BindingMismatch));
        Assert.That(n1.Detail, Is.EqualTo("pool: client has gold, server has none"));
    }

    [Test]
    public void Client_bound_to_a_pool_no_server_has_gets_no_matching_server()
    {
        using SelectionFixture f = Pools();

        SelectionResult r = f.Pick(client: "platinum-client");

        Assert.That(r.Outcome, Is.EqualTo(SelectionOutcome.NoMatchingServer));
        Assert.That(r.RetryAfter, Is.EqualTo(f.Options.NoMatchRetryAfter));
    }

    [Test]
    public void Task_attribute_on_a_binding_key_binds_like_a_client_attribute()
    {
        using SelectionFixture f = Pools(reserved: false);

        Assert.That(f.Chosen(8, client: "plain-client", taskAttributes: ["pool=silver"]), Is.EqualTo(new[] { "s1" }));
    }

    [Test]
    public void Task_cannot_leave_the_pool_its_client_is_bound_to()
    {
        using SelectionFixture f = Pools(reserved: false);

        Assert.That(f.Pick(client: "gold-client", taskAttributes: ["pool=silver"]).Outcome, Is.EqualTo(SelectionOutcome.NoMatchingServer));
        Assert.That(f.Chosen(4, client: "gold-client", taskAttributes: ["pool=gold", "other=x"]), Is.EqualTo(new[] { "g1", "g2" }));
    }

    [Test]
    public void Unbound_client_cannot_reach_a_reserved_pool_through_task_attributes()
    {
        using SelectionFixture f = Pools();

        Assert.That(f.Pick(client: "plain-client", taskAttributes: ["pool=gold"]).Outcome, Is.EqualTo(SelectionOutcome.NoMatchingServer));
    }

    private static SelectionFixture Networks(Action<SelectionOptions>? configure = null)
    {
        var f = new SelectionFixture(configure);
        f.Engine.SetNetworkRules(
        [
            new NetworkRule(IPNetwork.Parse("10.0.0.0/8"), SelectionFixture.Attrs("region=eu", "zone=a")),
            new NetworkRule(IPNetwork.Parse("10.1.0.0/16"), SelectionFixture.Attrs("region=us")),
            new NetworkRule(IPNetwork.Parse("10.1.2.0/24"), SelectionFixture.Attrs("rack=r7")),
            new NetworkRule(IPNetwork.Parse("2001:db8::/32"), SelectionFixture.Attrs("region=ap")),
            new NetworkRule(IPNetwork.Parse("2001:db8:1::/48"), SelectionFixture.Attrs("region=eu")),
            new NetworkRule(IPNetwork.Parse("::ffff:172.16.0.0/108"), SelectionFixture.Attrs("region=lab")),
        ]);
        return f;
    }

    [TestCase("10.200.0.1", "region=eu,zone=a")]
    [TestCase("10.1.9.9", "region=us,zone=a")]
    [TestCase("10.1.2.3", "rack=r7,region=us,zone=a")]
    [TestCase("::ffff:10.1.9.9", "region=us,zone=a")]
    [TestCase("2001:db8:2::1", "region=ap")]
    [TestCase("2001:db8:1::5", "region=eu")]
    [TestCase("172.16.3.4", "region=lab")]
    [TestCase("192.168.1.1", "")]
    [TestCase("2001:db9::1", "")]
    public void Network_rules_give_attributes_and_the_longest_prefix_wins(string address, string expected)
    {
        using SelectionFixture f = Networks();

        IReadOnlyDictionary<string, string> attrs = f.Engine.Clients.ResolveAttributes("unknown", IPAddress.Parse(address));

        Assert.That(string.Join(",", attrs.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}")), Is.EqualTo(expected));
    }

    [Test]
    public void Client_record_wins_over_network_rules()
    {
        using SelectionFixture f = Networks();
        f.Client("c1", "region=ap");

        IReadOnlyDictionary<string, string> attrs = f.Engine.Clients.ResolveAttributes("c1", IPAddress.Parse("10.1.2.3"));

        Assert.That(attrs["region"], Is.EqualTo("ap"));
        Assert.That(attrs["rack"], Is.EqualTo("r7"));
    }

    [Test]
    public void Network_rule_attributes_take_part_in_selection()
    {
        using SelectionFixture f = Networks(o => o.ClientPreferences = new Dictionary<string, int> { ["region"] = 10 });
        f.Add("eu1", 100, "region=eu");
        f.Add("us1", 100, "region=us");
        f.Add("ap1", 100, "region=ap");

        Assert.That(f.Pick(address: "10.200.0.1").Server!.Id, Is.EqualTo("eu1"));
        Assert.That(f.Pick(address: "10.1.0.1").Server!.Id, Is.EqualTo("us1"));
        Assert.That(f.Pick(address: "2001:db8:2::1").Server!.Id, Is.EqualTo("ap1"));
        Assert.That(f.Pick(address: "2001:db8:1::1").Server!.Id, Is.EqualTo("eu1"));
    }

    [Test]
    public void Same_network_listed_twice_is_refused()
    {
        using var f = new SelectionFixture();

        Assert.Throws<ArgumentException>(() => f.Engine.SetNetworkRules(
        [
            new NetworkRule(IPNetwork.Parse("10.0.0.0/8"), SelectionFixture.Attrs("a=1")),
            new NetworkRule(IPNetwork.Parse("10.0.0.0/8"), SelectionFixture.Attrs("a=2")),
        ]));
    }

    [Test]
    public void Unknown_client_is_rejected_when_configured()
    {
        using var f = new SelectionFixture(o => o.UnknownClients = UnknownClientMode.Reject);
        f.Add("s1");
        f.Client("known");

        SelectionResult r = f.Pick(client: "stranger");

        Assert.That(r.Outcome, Is.EqualTo(SelectionOutcome.UnknownClient));
        Assert.That(r.RetryAfter, Is.EqualTo(TimeSpan.Zero));
        Assert.That(f.Pick(client: "known").IsSelected, Is.True);
        Assert.That(f.Explain(client: "stranger").Outcome, Is.EqualTo(SelectionOutcome.UnknownClient));
    }

    [Test]
    public void Unknown_client_served_with_defaults_gets_the_default_attributes_under_its_network_rules()
    {
        using SelectionFixture f = Networks(o =>
        {
            o.BindingKeys = ["pool"];
            o.DefaultClientAttributes = new Dictionary<string, string> { ["pool"] = "public", ["region"] = "none" };
        });
        f.Add("pub", 100, "pool=public");
        f.Add("priv", 100, "pool=private");

        Assert.That(f.Chosen(4, client: "stranger"), Is.EqualTo(new[] { "pub" }));
        IReadOnlyDictionary<string, string> attrs = f.Explain(client: "stranger", address: "10.1.0.1").ClientAttributes;
        Assert.That(attrs["pool"], Is.EqualTo("public"));
        Assert.That(attrs["region"], Is.EqualTo("us"), "network rules win over defaults");
    }

    [Test]
    public void Task_kind_must_be_listed_by_servers_that_list_kinds()
    {
        using var f = new SelectionFixture();
        f.Add("k1", 100, "kinds=sha256, primes");
        f.Add("k2", 100, "kinds=echo");
        f.Add("any", 100);

        Assert.That(f.Kept(kind: "sha256"), Is.EqualTo(new[] { "any", "k1" }));
        Assert.That(f.Chosen(8, kind: "primes"), Is.EqualTo(new[] { "any", "k1" }));
        Assert.That(f.Chosen(8, kind: "echo"), Is.EqualTo(new[] { "any", "k2" }));
        Assert.That(f.Chosen(8, kind: "sleep"), Is.EqualTo(new[] { "any" }));
        Assert.That(f.Explain(kind: "sleep").Servers.First(v => v.Server.Id == "k2").Detail, Is.EqualTo("kinds=echo lacks sleep"));
    }

    [Test]
    public void Malformed_requirement_is_refused_with_its_position_and_no_retry()
    {
        using SelectionFixture f = Fleet();

        SelectionResult r = f.Pick("tier in (gold");

        Assert.That(r.Outcome, Is.EqualTo(SelectionOutcome.Malformed));
        Assert.That(r.Message, Is.EqualTo("expected ')' at 13"));
        Assert.That(r.ErrorPosition, Is.EqualTo(13));
        Assert.That(r.RetryAfter, Is.EqualTo(TimeSpan.Zero));
        Assert.That(f.Explain("tier in (gold").Outcome, Is.EqualTo(SelectionOutcome.Malformed));
    }

    [Test]
    public void Truncated_task_attributes_are_malformed()
    {
        using SelectionFixture f = Fleet();
        byte[] attrs = [2, 1, (byte)'a', 1, (byte)'b', 1]; // second pair cut short

        SelectionResult r = f.Engine.Select(new SelectionRequest("c1"u8, [10, 0, 0, 1], "echo"u8, attrs, default));

        Assert.That(r.Outcome, Is.EqualTo(SelectionOutcome.Malformed));
        Assert.That(r.Message, Is.EqualTo("task attributes are malformed"));
    }

    [Test]
    public void Client_address_of_the_wrong_length_is_malformed()
    {
        using SelectionFixture f = Fleet();

        SelectionResult r = f.Engine.Select(new SelectionRequest("c1"u8, [10, 0, 0], "echo"u8, ReadOnlySpan<byte>.Empty, default));

        Assert.That(r.Outcome, Is.EqualTo(SelectionOutcome.Malformed));
    }

    [Test]
    public void Missing_client_address_means_no_network_rules()
    {
        using SelectionFixture f = Networks(o => o.BindingKeys = ["region"]);
        f.Add("plain");
        f.Add("eu", 100, "region=eu");

        SelectionResult r = f.Engine.Select(new SelectionRequest("c1"u8, default, "echo"u8, ReadOnlySpan<byte>.Empty, default));

        Assert.That(r.Server!.Id, Is.EqualTo("plain"));
    }
}
