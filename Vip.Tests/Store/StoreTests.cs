using System.Net;
using Vip.Store;
using Vip.Tests.Tickets;

namespace Vip.Tests.Store;

public class StoreTests : StoreTestBase
{
    [Test]
    public async Task New_store_starts_empty_and_creates_its_file()
    {
        await using var store = Open();
        Assert.That(store.Snapshot.Servers, Is.Empty);
        Assert.That(store.Snapshot.Clients, Is.Empty);
        Assert.That(store.Snapshot.Networks, Is.Empty);
        Assert.That(File.Exists(DbPath), Is.True);
        Assert.That(store.Path, Is.EqualTo(Path.GetFullPath(DbPath)));
    }

    [Test]
    public async Task Servers_clients_and_rules_survive_a_restart()
    {
        var clock = new ManualClock(new DateTimeOffset(2026, 5, 1, 8, 0, 0, 123, TimeSpan.Zero));
        await using (var store = Open(time: clock))
        {
            await store.RegisterServerAsync(Server("app-1", 9001, 16, "region=eu", "pool=gold", "weird.key$=x y"));
            await store.RegisterServerAsync(new AppServerRegistration("app-2", new IPEndPoint(IPAddress.Parse("fd00::7"), 9002), Attrs(), 4));
            await store.SetServerDrainedAsync("app-2", true);
            await store.SetClientAsync("alice", Attrs("pool=gold", "tier=1"));
            await store.SetClientAsync("bob", Attrs());
            await store.SetNetworkRuleAsync(IPNetwork.Parse("10.1.0.0/16"), Attrs("region=eu"));
            await store.SetNetworkRuleAsync(IPNetwork.Parse("fd00::/8"), Attrs("v6=yes"));
            Assert.That(store.PendingWrites, Is.Zero);
        }

        await using var reopened = Open();
        var s = reopened.Snapshot;
        Assert.That(s.Servers.Keys, Is.EquivalentTo(new[] { "app-1", "app-2" }));
        var app1 = s.Servers["app-1"].Record;
        Assert.Multiple(() =>
        {
            Assert.That(app1.Service, Is.EqualTo(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 9001)));
            Assert.That(app1.Capacity, Is.EqualTo(16));
            Assert.That(app1.Attributes, Is.EquivalentTo(Attrs("region=eu", "pool=gold", "weird.key$=x y")));
            Assert.That(app1.State, Is.EqualTo(ServerState.Up));
            Assert.That(app1.AdminDrained, Is.False);
            Assert.That(app1.RegisteredAt, Is.EqualTo(clock.Now));
            Assert.That(app1.LastSeen, Is.EqualTo(clock.Now));
            Assert.That(s.Servers["app-2"].Record.Service, Is.EqualTo(new IPEndPoint(IPAddress.Parse("fd00::7"), 9002)));
            Assert.That(s.Servers["app-2"].Record.AdminDrained, Is.True);
            Assert.That(s.Servers.Values.Select(e => e.Liveness.HeardFrom), Is.All.False, "servers come back not yet heard from");
            Assert.That(s.Clients["alice"].Attributes, Is.EquivalentTo(Attrs("pool=gold", "tier=1")));
            Assert.That(s.Clients["bob"].Attributes, Is.Empty);
            Assert.That(s.Networks[IPNetwork.Parse("10.1.0.0/16")].Attributes, Is.EquivalentTo(Attrs("region=eu")));
            Assert.That(s.Networks[IPNetwork.Parse("fd00::/8")].Attributes, Is.EquivalentTo(Attrs("v6=yes")));
        });
    }

    [Test]
    public async Task Removals_survive_a_restart()
    {
        await using (var store = Open())
        {
            await store.RegisterServerAsync(Server("app-1"));
            await store.RegisterServerAsync(Server("app-2"));
            await store.SetClientAsync("alice", Attrs("a=1"));
            await store.SetClientAsync("bob", Attrs("b=1"));
            await store.SetNetworkRuleAsync(IPNetwork.Parse("10.0.0.0/8"), Attrs("x=1"));

            Assert.That(await store.DeregisterServerAsync("app-1"), Is.True);
            Assert.That(await store.RemoveClientAsync("alice"), Is.True);
            Assert.That(await store.RemoveNetworkRuleAsync(IPNetwork.Parse("10.0.0.0/8")), Is.True);
            Assert.That(await store.DeregisterServerAsync("nobody"), Is.False);
            Assert.That(await store.RemoveClientAsync("nobody"), Is.False);
            Assert.That(await store.RemoveNetworkRuleAsync(IPNetwork.Parse("192.168.0.0/16")), Is.False);
        }

        await using var reopened = Open();
        Assert.That(reopened.Snapshot.Servers.Keys, Is.EquivalentTo(new[] { "app-2" }));
        Assert.That(reopened.Snapshot.Clients.Keys, Is.EquivalentTo(new[] { "bob" }));
        Assert.That(reopened.Snapshot.Networks, Is.Empty);
    }

    [Test]
    public async Task Heartbeat_is_kept_in_memory_and_only_a_state_change_is_written()
    {
        var clock = new ManualClock(new DateTimeOffset(2026, 5, 1, 8, 0, 0, TimeSpan.Zero));
        await using (var store = Open(time: clock))
        {
            await store.RegisterServerAsync(Server("app-1"));
            var version = store.Snapshot.Version;
            clock.Advance(TimeSpan.FromSeconds(1));

            Assert.That(store.Heartbeat("app-1", ServerState.Up, 250, 3), Is.True);
            var live = store.Snapshot.Servers["app-1"].Liveness;
            Assert.That((live.LoadPermille, live.ActiveTasks, live.LastHeardUnixMs), Is.EqualTo((250, 3, clock.Now.ToUnixTimeMilliseconds())));
            Assert.That(store.Snapshot.Version, Is.EqualTo(version), "an unchanged state makes no new snapshot");
            Assert.That(store.PendingWrites, Is.Zero, "and no write");

            clock.Advance(TimeSpan.FromSeconds(1));
            Assert.That(store.Heartbeat("app-1", ServerState.Draining, 900, 9), Is.True);
            Assert.That(store.Snapshot.Version, Is.EqualTo(version + 1));
            Assert.That(store.Snapshot.Servers["app-1"].Record.State, Is.EqualTo(ServerState.Draining));
            Assert.That(store.Snapshot.Servers["app-1"].Liveness, Is.SameAs(live), "liveness carries over a record change");
            Assert.That(store.Heartbeat("nobody", ServerState.Up, 0, 0), Is.False);
            await store.FlushAsync();
        }

        await using var reopened = Open();
        var record = reopened.Snapshot.Servers["app-1"].Record;
        Assert.That(record.State, Is.EqualTo(ServerState.Draining));
        Assert.That(record.LastSeen, Is.EqualTo(clock.Now));
    }

    [Test]
    public async Task Reregistration_keeps_the_operator_drain_and_the_liveness()
    {
        await using var store = Open();
        await store.RegisterServerAsync(Server("app-1", 9000, 10, "v=1"));
        await store.SetServerDrainedAsync("app-1", true);
        var live = store.Snapshot.Servers["app-1"].Liveness;

        await store.RegisterServerAsync(Server("app-1", 9100, 20, "v=2"));

        var entry = store.Snapshot.Servers["app-1"];
        Assert.That(entry.Record.AdminDrained, Is.True);
        Assert.That(entry.Record.Service.Port, Is.EqualTo(9100));
        Assert.That(entry.Record.Attributes["v"], Is.EqualTo("2"));
        Assert.That(entry.Liveness, Is.SameAs(live));
    }

    [Test]
    public async Task Writes_are_visible_at_once_and_raise_changed()
    {
        await using var store = Open();
        var events = new List<(StoreChangeKind, string, long)>();
        store.Changed += (_, e) => events.Add((e.Kind, e.Key, e.Snapshot.Version));

        var write = store.SetClientAsync("alice", Attrs("a=1"));
        Assert.That(store.Snapshot.Clients.ContainsKey("alice"), Is.True, "visible before it is durable");
        await write;
        await store.SetNetworkRuleAsync(IPNetwork.Parse("10.1.0.0/16"), Attrs());
        await store.RegisterServerAsync(Server("s"));
        await store.DeregisterServerAsync("s");
        await store.RemoveClientAsync("alice");
        await store.RemoveNetworkRuleAsync(IPNetwork.Parse("10.1.0.0/16"));

        Assert.That(events.Select(e => (e.Item1, e.Item2)), Is.EqualTo(new[]
        {
            (StoreChangeKind.ClientSet, "alice"),
            (StoreChangeKind.NetworkSet, "10.1.0.0/16"),
            (StoreChangeKind.ServerSet, "s"),
            (StoreChangeKind.ServerRemoved, "s"),
            (StoreChangeKind.ClientRemoved, "alice"),
            (StoreChangeKind.NetworkRemoved, "10.1.0.0/16"),
        }));
        Assert.That(events.Select(e => e.Item3), Is.Ordered.Ascending);
    }

    [Test]
    public async Task Network_rules_for_an_address_come_widest_first()
    {
        await using var store = Open();
        await store.SetNetworkRuleAsync(IPNetwork.Parse("10.1.2.0/24"), Attrs("room=b12"));
        await store.SetNetworkRuleAsync(IPNetwork.Parse("10.0.0.0/8"), Attrs("site=hq"));
        await store.SetNetworkRuleAsync(IPNetwork.Parse("10.1.0.0/16"), Attrs("region=eu"));
        await store.SetNetworkRuleAsync(IPNetwork.Parse("192.168.0.0/16"), Attrs("lab=1"));

        var rules = store.Snapshot.NetworkRulesFor(IPAddress.Parse("10.1.2.3"));
        Assert.That(rules.Select(r => r.Network.ToString()), Is.EqualTo(new[] { "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24" }));
        Assert.That(store.Snapshot.NetworkRulesFor(IPAddress.Parse("10.1.2.3").MapToIPv6()), Has.Count.EqualTo(3));
        Assert.That(store.Snapshot.NetworkRulesFor(IPAddress.Parse("172.16.0.1")), Is.Empty);
    }

    [Test]
    public async Task Caps_on_records_and_attributes_are_enforced()
    {
        await using var store = Open(o => { o.MaxServers = 2; o.MaxClients = 1; o.MaxNetworkRules = 1; o.MaxAttributes = 2; });
        await store.RegisterServerAsync(Server("a"));
        await store.RegisterServerAsync(Server("b"));
        Assert.Throws<StoreLimitException>(() => store.RegisterServerAsync(Server("c")));
        Assert.DoesNotThrowAsync(() => store.RegisterServerAsync(Server("a", 9999)), "replacing is not adding");

        await store.SetClientAsync("x", Attrs());
        Assert.Throws<StoreLimitException>(() => store.SetClientAsync("y", Attrs()));
        await store.SetNetworkRuleAsync(IPNetwork.Parse("10.0.0.0/8"), Attrs());
        Assert.Throws<StoreLimitException>(() => store.SetNetworkRuleAsync(IPNetwork.Parse("11.0.0.0/8"), Attrs()));

        Assert.Throws<ArgumentException>(() => store.SetClientAsync("x", Attrs("a=1", "b=2", "c=3")));
        Assert.Throws<ArgumentException>(() => store.SetClientAsync("x", Attrs("=1")));
        Assert.Throws<ArgumentException>(() => store.SetClientAsync("x", Attrs("k=" + new string('v', 256))));
        Assert.Throws<ArgumentException>(() => store.SetClientAsync(new string('i', 256), Attrs()));
        Assert.Throws<ArgumentException>(() => store.SetClientAsync("", Attrs()));
        Assert.Throws<ArgumentException>(() => store.SetClientAsync("a\nb", Attrs()));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.RegisterServerAsync(Server("a", capacity: -1)));
        Assert.That(store.Snapshot.Servers.Keys, Is.EquivalentTo(new[] { "a", "b" }));
    }

    [Test]
    public async Task Attributes_are_copied_so_the_caller_cannot_change_a_stored_record()
    {
        await using var store = Open();
        var attrs = Attrs("a=1");
        await store.SetClientAsync("alice", attrs);
        attrs["a"] = "changed";
        attrs["b"] = "added";
        Assert.That(store.Snapshot.Clients["alice"].Attributes, Is.EquivalentTo(Attrs("a=1")));
    }

    [Test]
    public async Task Options_are_validated()
    {
        Assert.Throws<ArgumentException>(() => VipStore.Open(new StoreOptions()));
        Assert.Throws<ArgumentOutOfRangeException>(() => Open(o => o.MaxBatchSize = 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Open(o => o.RetryMaxDelay = TimeSpan.FromMilliseconds(1)));
        await using var store = Open(); // the failed opens left no lock behind
    }

    [Test]
    public async Task Writes_after_dispose_are_refused()
    {
        var store = Open();
        await store.DisposeAsync();
        Assert.Throws<ObjectDisposedException>(() => store.SetClientAsync("a", Attrs()));
        Assert.Throws<ObjectDisposedException>(() => store.FlushAsync());
        await store.DisposeAsync(); // twice is fine
    }
}
