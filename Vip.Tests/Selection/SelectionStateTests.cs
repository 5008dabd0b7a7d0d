using System.Net;
using System.Text;
using System.Text.Json;
using Vip.Selection;

namespace Vip.Tests.Selection;

/// <summary>Capacity, draining, heartbeat expiry, registration, publication and explain.</summary>
public class SelectionStateTests
{
    [Test]
    public void Full_servers_are_skipped_and_all_full_means_overloaded()
    {
        using var f = new SelectionFixture();
        f.Add("a", 2, "region=eu");
        f.Add("b", 100, "region=us");

        Assert.That(f.Pick("region=eu").Server!.Id, Is.EqualTo("a"));
        Assert.That(f.Pick("region=eu").Server!.Id, Is.EqualTo("a"));
        SelectionResult r = f.Pick("region=eu");

        Assert.That(r.Outcome, Is.EqualTo(SelectionOutcome.Overloaded));
        Assert.That(r.RetryAfter, Is.EqualTo(TimeSpan.FromSeconds(1)));
        Assert.That(r.Message, Is.EqualTo("every matching server is at capacity"));
        Assert.That(f.Explain("region=eu").Servers.Single(v => v.Server.Id == "a").Reason, Is.EqualTo(DropReason.Full));
    }

    [Test]
    public void Active_tasks_count_against_capacity()
    {
        using var f = new SelectionFixture();
        f.Add("a", 3);
        f.Beat("a", active: 3);

        Assert.That(f.Pick().Outcome, Is.EqualTo(SelectionOutcome.Overloaded));
        f.Beat("a", active: 2);
        Assert.That(f.Pick().IsSelected, Is.True);
    }

    [Test]
    public void Release_takes_the_ticket_back()
    {
        using var f = new SelectionFixture();
        f.Add("a", 1);
        SelectionResult first = f.Pick();
        Assert.That(f.Pick().Outcome, Is.EqualTo(SelectionOutcome.Overloaded));

        SelectionEngine.Release(first);

        Assert.That(f.Pick().IsSelected, Is.True);
    }

    [Test]
    public void Release_after_a_heartbeat_does_not_go_below_zero()
    {
        using var f = new SelectionFixture();
        ServerEntry a = f.Add("a", 5);
        SelectionResult first = f.Pick();
        f.Beat("a");

        SelectionEngine.Release(first);

        Assert.That(a.IssuedSinceHeartbeat, Is.Zero);
    }

    [Test]
    public void Draining_server_takes_no_tasks_until_it_is_up_again()
    {
        using var f = new SelectionFixture();
        f.Add("a");
        f.Beat("a", draining: true);

        Assert.That(f.Pick().Outcome, Is.EqualTo(SelectionOutcome.NoMatchingServer));
        Assert.That(f.Explain().Servers[0].Reason, Is.EqualTo(DropReason.Draining));
        Assert.That(f.Engine.Servers[0].State, Is.EqualTo(ServerState.Draining));

        f.Beat("a");
        Assert.That(f.Pick().IsSelected, Is.True);
    }

    [Test]
    public void Server_not_heard_from_within_the_timeout_leaves_and_returns_with_its_next_heartbeat()
    {
        using var f = new SelectionFixture(o =>
        {
            o.HeartbeatInterval = TimeSpan.FromSeconds(1);
            o.MissedHeartbeats = 3;
        });
        f.Add("a");
        f.Add("b");

        f.Time.Advance(TimeSpan.FromSeconds(2));
        f.Beat("b");
        f.Time.Advance(TimeSpan.FromSeconds(1.5));

        Assert.That(f.Kept(), Is.EqualTo(new[] { "b" }));
        Assert.That(f.Chosen(4), Is.EqualTo(new[] { "b" }));
        ServerVerdict a = f.Explain().Servers.Single(v => v.Server.Id == "a");
        Assert.That(a.Reason, Is.EqualTo(DropReason.Expired));
        Assert.That(a.Detail, Is.EqualTo("last heard 2026-01-01T00:00:00.0000000+00:00"));

        f.Time.Advance(TimeSpan.FromSeconds(5));
        Assert.That(f.Pick().Outcome, Is.EqualTo(SelectionOutcome.NoMatchingServer), "both expired");

        f.Beat("a");
        Assert.That(f.Chosen(4), Is.EqualTo(new[] { "a" }));
    }

    [Test]
    public void Reloaded_server_waits_for_its_first_heartbeat()
    {
        using var f = new SelectionFixture();
        int n = f.Engine.RegisterMany([new ServerRegistration("a", new IPEndPoint(IPAddress.Loopback, 9000), 10, new Dictionary<string, string>())]);

        Assert.That(n, Is.EqualTo(1));
        Assert.That(f.Engine.Servers[0].State, Is.EqualTo(ServerState.Unknown));
        Assert.That(f.Engine.Servers[0].LastHeard, Is.Null);
        Assert.That(f.Explain().Servers[0].Reason, Is.EqualTo(DropReason.NotHeardFrom));
        Assert.That(f.Pick().Outcome, Is.EqualTo(SelectionOutcome.NoMatchingServer));

        f.Beat("a");
        Assert.That(f.Pick().IsSelected, Is.True);
        Assert.That(f.Engine.Servers[0].LastHeard, Is.EqualTo(f.Time.GetUtcNow()));
    }

    [Test]
    public void Deregistered_server_is_not_chosen_even_before_the_next_publication()
    {
        using var f = new SelectionFixture(o => o.PublishDelay = TimeSpan.FromSeconds(1));
        f.Add("a");
        f.Add("b");
        f.Engine.Publish();

        Assert.That(f.Engine.Deregister("a"), Is.True);

        Assert.That(f.Engine.Servers, Has.Count.EqualTo(2), "not yet published");
        Assert.That(f.Chosen(4), Is.EqualTo(new[] { "b" }));
        Assert.That(f.Engine.Heartbeat("a", default), Is.False);
        Assert.That(f.Engine.Deregister("a"), Is.False);
    }

    [Test]
    public void Registrations_are_published_together_after_the_publish_delay()
    {
        using var f = new SelectionFixture(o => o.PublishDelay = TimeSpan.FromMilliseconds(50));
        long version = f.Engine.Servers.Version;
        for (int i = 0; i < 100; i++)
        {
            f.Add($"s{i}");
        }

        Assert.That(f.Engine.Servers, Is.Empty);
        Assert.That(f.Engine.Heartbeat("s5", default), Is.True, "heartbeats reach a server before it is published");

        f.Time.Advance(TimeSpan.FromMilliseconds(50));

        Assert.That(f.Engine.Servers, Has.Count.EqualTo(100));
        Assert.That(f.Engine.Servers.Version, Is.EqualTo(version + 1));
    }

    [Test]
    public void Bulk_registration_publishes_one_snapshot()
    {
        using var f = new SelectionFixture();
        long version = f.Engine.Servers.Version;

        f.Engine.RegisterMany(Enumerable.Range(0, 500).Select(i => new ServerRegistration($"s{i}", new IPEndPoint(IPAddress.Loopback, 10_000 + i), 10, new Dictionary<string, string> { ["n"] = $"{i}" })));

        Assert.That(f.Engine.Servers, Has.Count.EqualTo(500));
        Assert.That(f.Engine.Servers.Version, Is.EqualTo(version + 1));
    }

    [Test]
    public void Heartbeats_do_not_rebuild_the_snapshot()
    {
        using var f = new SelectionFixture();
        f.Add("a");
        ServerSet before = f.Engine.Servers;

        f.Beat("a", active: 3);
        Assert.That(f.Engine.Heartbeat("a"u8, new ServerHeartbeat(250, 4, false)), Is.True);

        Assert.That(f.Engine.Servers, Is.SameAs(before));
        Assert.That(before[0].ActiveTasks, Is.EqualTo(4));
        Assert.That(before[0].LoadPermille, Is.EqualTo(250));
    }

    [Test]
    public void Same_registration_again_does_not_rebuild_but_a_change_does()
    {
        using var f = new SelectionFixture();
        var reg = new ServerRegistration("a", new IPEndPoint(IPAddress.Loopback, 9000), 10, SelectionFixture.Attrs("region=eu"));
        f.Engine.Register(reg);
        ServerSet before = f.Engine.Servers;

        f.Engine.Register(reg with { Attributes = SelectionFixture.Attrs("region=eu") });
        Assert.That(f.Engine.Servers, Is.SameAs(before));

        f.Engine.Register(reg with { Attributes = SelectionFixture.Attrs("region=us") });
        Assert.That(f.Engine.Servers, Is.Not.SameAs(before));
        Assert.That(f.Kept("region=us"), Is.EqualTo(new[] { "a" }));
    }

    [Test]
    public void Re_registration_keeps_the_issued_count()
    {
        using var f = new SelectionFixture();
        f.Add("a", 10, "v=1");
        f.Pick();

        ServerEntry again = f.Engine.Register(new ServerRegistration("a", new IPEndPoint(IPAddress.Loopback, 9000), 10, SelectionFixture.Attrs("v=2")));

        Assert.That(again.IssuedSinceHeartbeat, Is.EqualTo(1));
    }

    [TestCase(0)]
    [TestCase(-1)]
    public void Invalid_registration_is_refused_with_a_reason(int capacity)
    {
        using var f = new SelectionFixture();

        bool ok = f.Engine.TryRegister(new ServerRegistration("a", new IPEndPoint(IPAddress.Loopback, 1), capacity, new Dictionary<string, string>()), out _, out string? error);

        Assert.That(ok, Is.False);
        Assert.That(error, Is.EqualTo($"server 'a' capacity must be 1 to 1000000 (was {capacity})"));
    }

    [Test]
    public void Registration_beyond_the_server_limit_is_refused()
    {
        using var f = new SelectionFixture(o => o.MaxServers = 2);
        f.Add("a");
        f.Add("b");

        bool ok = f.Engine.TryRegister(new ServerRegistration("c", new IPEndPoint(IPAddress.Loopback, 1), 1, new Dictionary<string, string>()), out _, out string? error);

        Assert.That(ok, Is.False);
        Assert.That(error, Is.EqualTo("server limit of 2 reached"));
        Assert.That(f.Engine.TryRegister(new ServerRegistration("a", new IPEndPoint(IPAddress.Loopback, 1), 1, new Dictionary<string, string>()), out _, out _), Is.True, "an update is not a new server");
    }

    [Test]
    public void Registration_with_too_many_attributes_is_refused()
    {
        using var f = new SelectionFixture(o => o.MaxServerAttributes = 2);

        Assert.Throws<ArgumentException>(() => f.Add("a", 1, "x=1", "y=2", "z=3"));
    }

    [Test]
    public void Invalid_options_are_refused_with_every_problem()
    {
        var o = new SelectionOptions { MaxAlternatives = 9, MissedHeartbeats = 0, BindingKeys = ["pool", "pool"] };

        IReadOnlyList<string> errors = o.Validate();

        Assert.That(errors, Has.Count.EqualTo(3));
        Assert.Throws<ArgumentException>(() => new SelectionEngine(o));
        Assert.That(new SelectionOptionsValidator().Validate(null, o).Failed, Is.True);
        Assert.That(new SelectionOptions().Validate(), Is.Empty);
    }

    [Test]
    public void Explain_gives_every_server_a_reason_a_score_and_the_dry_run_rank()
    {
        using var f = new SelectionFixture(o =>
        {
            o.BindingKeys = ["pool"];
            o.MaxAlternatives = 1;
        });
        f.Add("bound", 10, "pool=gold");
        f.Add("kinds", 10, "kinds=sha256");
        f.Add("small", 10, "cores=4");
        f.Add("full", 1, "cores=8");
        f.Add("drain", 10, "cores=8");
        f.Add("best", 10, "cores=8", "region=eu");
        f.Add("second", 10, "cores=16");
        f.Beat("drain", draining: true);
        f.Beat("second", active: 5);
        f.Beat("full", active: 1);

        SelectionExplanation e = f.Explain("cores>=8, region=eu:5");
        Dictionary<string, ServerVerdict> v = e.Servers.ToDictionary(s => s.Server.Id);

        Assert.Multiple(() =>
        {
            Assert.That(e.Outcome, Is.EqualTo(SelectionOutcome.Selected));
            Assert.That(e.Chosen!.Id, Is.EqualTo("best"));
            Assert.That(v["bound"].Reason, Is.EqualTo(DropReason.BindingMismatch));
            Assert.That(v["kinds"].Reason, Is.EqualTo(DropReason.KindNotServed));
            Assert.That(v["small"].Reason, Is.EqualTo(DropReason.RequirementFailed));
            Assert.That(v["small"].Detail, Is.EqualTo("cores>=8"));
            Assert.That(v["full"].Reason, Is.EqualTo(DropReason.Full));
            Assert.That(v["full"].Detail, Is.EqualTo("1 of 1 in use"));
            Assert.That(v["drain"].Reason, Is.EqualTo(DropReason.Draining));
            Assert.That(v["best"].Kept, Is.True);
            Assert.That(v["best"].PreferenceScore, Is.EqualTo(5));
            Assert.That(v["best"].Rank, Is.EqualTo(0));
            Assert.That(v["second"].Rank, Is.EqualTo(1));
            Assert.That(v["second"].Load, Is.EqualTo(0.5));
            Assert.That(v["drain"].Rank, Is.EqualTo(-1));
        });
        Assert.That(f.Engine.Servers.Single(s => s.Id == "best").IssuedSinceHeartbeat, Is.Zero, "explain counts no ticket");
    }

    [Test]
    public void Explain_writes_json()
    {
        using var f = new SelectionFixture();
        f.Add("a", 10, "region=eu");
        var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            f.Explain("region=eu").WriteJson(writer);
        }

        using JsonDocument doc = JsonDocument.Parse(buffer.ToArray());

        Assert.That(doc.RootElement.GetProperty("chosen").GetString(), Is.EqualTo("a"));
        Assert.That(doc.RootElement.GetProperty("servers")[0].GetProperty("reason").GetString(), Is.EqualTo("Kept"));
        Assert.That(Encoding.UTF8.GetString(buffer.ToArray()), Does.Contain("\"requirement\":\"region=eu\""));
    }

    [TestCase(SelectionPolicy.LeastLoad)]
    [TestCase(SelectionPolicy.PowerOfTwoChoices)]
    [TestCase(SelectionPolicy.WeightedRoundRobin)]
    [TestCase(SelectionPolicy.ClientAffinity)]
    public void Selection_allocates_nothing_in_steady_state(SelectionPolicy policy)
    {
        using var f = new SelectionFixture(o =>
        {
            o.Policy = policy;
            o.BindingKeys = ["pool"];
            o.ClientPreferences = new Dictionary<string, int> { ["region"] = 10 };
        });
        f.Engine.RegisterMany(
            Enumerable.Range(0, 200).Select(i => new ServerRegistration($"s{i}", new IPEndPoint(IPAddress.Loopback, 9000 + i), 1_000_000, SelectionFixture.Attrs(
                $"region={(i % 2 == 0 ? "eu" : "us")}", $"tier={(i % 3 == 0 ? "gold" : "silver")}", $"cores={4 << (i % 4)}", "kinds=echo,sha256"))),
            ServerState.Up);

        f.Client("c1", "region=eu");
        f.Engine.SetNetworkRules([new NetworkRule(IPNetwork.Parse("10.0.0.0/8"), SelectionFixture.Attrs("zone=a"))]);
        byte[] attrs = SelectionRequest.EncodeAttributes(SelectionFixture.Attrs("job=42"));
        byte[] requirement = "region=eu, tier in (gold,silver), cores>=8, gpu:5"u8.ToArray();
        byte[] address = [10, 1, 2, 3];
        for (int i = 0; i < 10; i++)
        {
            f.Engine.Select(new SelectionRequest("c1"u8, address, "echo"u8, attrs, requirement));
        }

        // Rounds of 1 000 decisions; the quietest must allocate nothing. A decision that allocates shows in every
        // round; a one-time cost of something else on this thread shows in one round only (seen rarely in whole-
        // suite runs: one round of 5 776 bytes once, with different policies; its cause was not found).
        var allocations = new List<long>();
        for (int round = 0; round < 3; round++)
        {
            int selected = 0;
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 1000; i++)
            {
                if (f.Engine.Select(new SelectionRequest("c1"u8, address, "echo"u8, attrs, requirement)).IsSelected)
                {
                    selected++;
                }
            }

            allocations.Add(GC.GetAllocatedBytesForCurrentThread() - before);
            Assert.That(selected, Is.EqualTo(1000));
        }

        Assert.That(allocations.Min(), Is.Zero, $"bytes allocated per round of 1 000 decisions: {string.Join(", ", allocations)}");
    }
}

public class SelectionServiceCollectionTests
{
    [Test]
    public void Engine_resolves_from_the_container_with_its_configured_options()
    {
        var services = new Microsoft.Extensions.DependencyInjection.ServiceCollection();
        services.AddVipSelection(o => o.Policy = SelectionPolicy.ClientAffinity);
        using Microsoft.Extensions.DependencyInjection.ServiceProvider provider = Microsoft.Extensions.DependencyInjection.ServiceCollectionContainerBuilderExtensions.BuildServiceProvider(services);

        SelectionEngine engine = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<SelectionEngine>(provider);

        Assert.That(engine.Options.Policy, Is.EqualTo(SelectionPolicy.ClientAffinity));
    }

    [Test]
    public void Invalid_options_fail_validation_in_the_container()
    {
        var services = new Microsoft.Extensions.DependencyInjection.ServiceCollection();
        services.AddVipSelection(o => o.MaxAlternatives = 99);
        using Microsoft.Extensions.DependencyInjection.ServiceProvider provider = Microsoft.Extensions.DependencyInjection.ServiceCollectionContainerBuilderExtensions.BuildServiceProvider(services);

        var ex = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() =>
            _ = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<Microsoft.Extensions.Options.IOptions<SelectionOptions>>(provider).Value);

        Assert.That(ex!.Message, Does.Contain("MaxAlternatives must be 0 to 8."));
    }
}

public class SelectionProtocolTests
{
    [Test]
    public void Request_built_from_a_forward_frame_selects_like_one_built_from_strings()
    {
        using var f = new SelectionFixture(o =>
        {
            o.BindingKeys = ["pool"];
            o.ReservedBindings = false;
        });
        f.Add("gold", 10, "pool=gold");
        f.Add("plain", 10);
        f.Engine.SetNetworkRules([new NetworkRule(IPNetwork.Parse("10.0.0.0/8"), SelectionFixture.Attrs("zone=a"))]);
        var task = new Vip.Protocol.TaskRequest("c1", "echo", [new("pool", "gold")], "", ReadOnlyMemory<byte>.Empty);
        var forward = new Vip.Protocol.ForwardRequest("t1", Vip.Protocol.WireEndpoint.From(IPAddress.Parse("10.0.0.1"), 5000), task);
        byte[] payload = new byte[1024];
        var writer = new Vip.Protocol.PayloadWriter(payload);
        forward.WritePayload(ref writer);

        Span<byte> address = stackalloc byte[16];
        SelectionResult r = f.Engine.Select(SelectionRequest.FromForward(Vip.Protocol.ForwardView.Read(payload.AsSpan(0, writer.Written)), address));

        Assert.That(r.Outcome, Is.EqualTo(SelectionOutcome.Selected), r.Message);
        Assert.That(r.Server!.Id, Is.EqualTo("gold"), "the task's pool attribute bound the choice");
        Assert.That(f.Explain(address: "10.0.0.1").ClientAttributes["zone"], Is.EqualTo("a"));
    }
}
