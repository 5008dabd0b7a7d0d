using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Vip.Daemons.Hosting;
using Vip.Daemons.Roles;
using Vip.Dispatch.Tier2;
using Vip.Protocol;
using Vip.Tickets;

namespace Vip.Tests.Dispatch.Tier2;

public class CtlAndRoleTests
{
    private Tier2Fixture _fixture = null!;
    private string _tokenFile = "";

    [SetUp]
    public void SetUp()
    {
        _fixture = new Tier2Fixture();
        _tokenFile = Path.Combine(_fixture.Directory, "admin.token");
        File.WriteAllText(_tokenFile, Tier2Fixture.Token + "\n");
    }

    [TearDown]
    public async Task TearDown() => await _fixture.DisposeAsync();

    private async Task<(int Code, string Out, string Err)> Ctl(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var code = await new CtlRole(o, e).RunAsync(args);
        return (code, o.ToString(), e.ToString());
    }

    [Test]
    public async Task Ctl_fans_out_and_prints_a_table_when_the_daemons_agree()
    {
        var a = await _fixture.StartAsync(_fixture.Options("a.db"));
        var b = await _fixture.StartAsync(_fixture.Options("b.db"));
        var service = new IPEndPoint(IPAddress.Parse("127.0.0.30"), 5000);
        using var la = RawAppServer.Register(a, "app-1", service, 10, ("region", "eu"));
        using var lb = RawAppServer.Register(b, "app-1", service, 10, ("region", "eu"));
        var control = $"{a.ControlEndPoint},{b.ControlEndPoint}";

        var set = await Ctl("--control", control, "--token-file", _tokenFile, "clients", "set", "acme", "pool=gold");
        var list = await Ctl("--control", control, "--token-file", _tokenFile, "servers", "list");
        var get = await Ctl("--control", control, "--token-file", _tokenFile, "clients", "get", "acme");

        Assert.Multiple(() =>
        {
            Assert.That(set.Code, Is.Zero, set.Err);
            Assert.That(list.Code, Is.Zero, list.Err);
            Assert.That(list.Out, Does.Contain("ID").And.Contain("app-1").And.Contain("127.0.0.30:5000").And.Contain("region=eu"));
            Assert.That(get.Out, Does.Contain("pool=gold"));
            Assert.That(a.Store!.Snapshot.Clients.ContainsKey("acme") && b.Store!.Snapshot.Clients.ContainsKey("acme"), Is.True);
        });
    }

    [Test]
    public async Task Ctl_reports_a_daemon_that_disagrees()
    {
        var a = await _fixture.StartAsync(_fixture.Options("a.db"));
        var b = await _fixture.StartAsync(_fixture.Options("b.db"));
        await using (var admin = await Tier2AdminClient.ConnectAsync(a.ControlEndPoint, Tier2Fixture.Token, TimeSpan.FromSeconds(5)))
        {
            await admin.SendAsync(Tier2AdminCommands.NetworksSet, ["10.9.0.0/16", "region=eu"], TimeSpan.FromSeconds(5));
        }

        var list = await Ctl("--control", $"{a.ControlEndPoint},{b.ControlEndPoint}", "--token-file", _tokenFile, "networks", "list");

        Assert.That(list.Code, Is.EqualTo(2));
        Assert.That(list.Err, Does.Contain(b.ControlEndPoint.ToString()).And.Contain("disagrees").And.Contain("10.9.0.0/16"));
    }

    [Test]
    public async Task Ctl_reports_a_daemon_that_does_not_answer_and_a_refused_token()
    {
        var a = await _fixture.StartAsync(_fixture.Options("a.db"));
        using var closed = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        closed.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var dead = (IPEndPoint)closed.LocalEndPoint!; // bound, not listening: connections are refused
        var wrongToken = Path.Combine(_fixture.Directory, "wrong.token");
        File.WriteAllText(wrongToken, "nope");

        var silent = await Ctl("--control", $"{a.ControlEndPoint},{dead}", "--token-file", _tokenFile, "servers", "list");
        var refused = await Ctl("--control", $"{a.ControlEndPoint}", "--token-file", wrongToken, "servers", "list");

        Assert.That(silent.Code, Is.EqualTo(1));
        Assert.That(silent.Err, Does.Contain(dead.ToString()).And.Contain("no answer"));
        Assert.That(refused.Code, Is.EqualTo(1));
        Assert.That(refused.Err, Does.Contain("token"));
    }

    [Test]
    public async Task Ctl_explain_prints_every_server_with_the_reason()
    {
        var a = await _fixture.StartAsync(_fixture.Options("a.db"));
        using var eu = RawAppServer.Register(a, "eu-1", new IPEndPoint(IPAddress.Parse("127.0.0.31"), 5000), 10, ("region", "eu"));
        using var us = RawAppServer.Register(a, "us-1", new IPEndPoint(IPAddress.Parse("127.0.0.32"), 5000), 10, ("region", "us"));
        eu.Heartbeat("eu-1");
        us.Heartbeat("us-1");
        await Vip.Tests.Agent.Eventually.TrueAsync(() => a.Selection.Servers.Count(s => s.State == Vip.Selection.ServerState.Up) == 2, "both up");

        var explain = await Ctl("--control", $"{a.ControlEndPoint}", "--token-file", _tokenFile, "explain", "--client", "acme", "--require", "region=eu");

        Assert.That(explain.Code, Is.Zero, explain.Err);
        Assert.That(explain.Out, Does.Contain("would choose eu-1"));
        Assert.That(explain.Out, Does.Match(@"us-1\s+no\s+.*RequirementFailed"));
    }

    [TestCase(new string[0], "no command")]
    [TestCase(new[] { "servers" }, "needs")]
    [TestCase(new[] { "clients", "set", "x", "novalue" }, "is not an attribute")]
    [TestCase(new[] { "explain" }, "--client")]
    [TestCase(new[] { "reboot" }, "unknown command")]
    public void Ctl_usage_errors_are_one_line(string[] words, string expected)
    {
        var ex = Assert.Throws<StartupException>(() => CtlRole.ParseCommand([.. words], []));
        Assert.That(ex!.Message, Does.Contain(expected));
    }

    private static IConfiguration Config(params (string Key, string Value)[] pairs)
        => new ConfigurationBuilder().AddInMemoryCollection(pairs.Select(p => KeyValuePair.Create(p.Key, (string?)p.Value))).Build();

    [Test]
    public void Tier2_configuration_maps_switches_and_refuses_bad_values_in_one_line()
    {
        var good = Tier2Role.BuildOptions(Config(("Tier2:Listen", "127.0.0.1:7200"), ("Tier2:Control", "127.0.0.1:7300"),
            ("Tier2:Db", "/tmp/x.db"), ("Tier2:TicketKeyFile", "/tmp/k"), ("Selection:Policy", "affinity"), ("Selection:BindingKeys:0", "pool")));

        Assert.Multiple(() =>
        {
            Assert.That(good.ListenEndPoint, Is.EqualTo(IPEndPoint.Parse("127.0.0.1:7200")));
            Assert.That(good.Selection.Policy, Is.EqualTo(Vip.Selection.SelectionPolicy.ClientAffinity));
            Assert.That(good.Selection.BindingKeys, Is.EqualTo(new[] { "pool" }));
            Assert.That(() => Tier2Role.BuildOptions(Config(("Tier2:Listen", "nowhere"), ("Tier2:Control", "127.0.0.1:1"), ("Tier2:Db", "x"), ("Tier2:TicketKeyFile", "k"))),
                Throws.TypeOf<StartupException>().With.Message.Contains("nowhere"));
            Assert.That(() => Tier2Role.BuildOptions(Config(("Tier2:Listen", "127.0.0.1:1"), ("Tier2:Control", "127.0.0.1:2"), ("Tier2:TicketKeyFile", "k"))),
                Throws.TypeOf<StartupException>().With.Message.Contains("--db"));
            Assert.That(() => Tier2Role.BuildOptions(Config(("Tier2:Listen", "127.0.0.1:1"), ("Tier2:Control", "127.0.0.1:2"), ("Tier2:Db", "x"), ("Tier2:TicketKeyFile", "k"), ("Selection:Policy", "random"))),
                Throws.TypeOf<StartupException>().With.Message.Contains("random"));
        });
    }

    [Test]
    public void Tier2_role_with_a_missing_key_file_fails_with_one_line()
    {
        var missing = Path.Combine(_fixture.Directory, "missing.key");
        var ex = Assert.ThrowsAsync<StartupException>(() => new Tier2Role().RunAsync(
            ["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--db", Path.Combine(_fixture.Directory, "t.db"), "--ticket-key-file", missing]));
        Assert.That(ex!.Message, Does.Contain(missing).And.Contain("does not exist"));
    }

    [Test]
    public void Tier2_role_with_a_missing_store_directory_fails_with_one_line()
    {
        var keyFile = Path.Combine(_fixture.Directory, "ticket.key");
        TicketKeyFile.Save(keyFile, _fixture.Keys, overwrite: false);
        var db = Path.Combine(_fixture.Directory, "nope", "t.db");
        var ex = Assert.ThrowsAsync<StartupException>(() => new Tier2Role().RunAsync(
            ["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--db", db, "--ticket-key-file", keyFile]));
        Assert.That(ex!.Message, Does.Contain("nope"));
    }

    [Test]
    public void App_configuration_reads_repeated_attributes_and_control_lists()
    {
        var (agent, tasks) = AppRole.BuildOptions(Config(("App:Id", "a1"), ("App:Listen", "127.0.0.1:7400"), ("App:Control", "127.0.0.1:7300, 127.0.0.1:7301"),
            ("App:Attr:0", "region=eu"), ("App:Attr:1", "cores=16"), ("App:Capacity", "12"), ("App:TicketKeyFile", "k"), ("App:RequireExpect", "true"), ("App:MaxPrimesN", "1000")));

        Assert.Multiple(() =>
        {
            Assert.That(agent.ControlEndPoints, Has.Count.EqualTo(2));
            Assert.That(agent.Attributes, Is.EquivalentTo(new Dictionary<string, string> { ["region"] = "eu", ["cores"] = "16" }));
            Assert.That(agent.Capacity, Is.EqualTo(12u));
            Assert.That(agent.RequireExpect, Is.True);
            Assert.That(tasks.MaxPrimesN, Is.EqualTo(1000));
            Assert.That(() => AppRole.BuildOptions(Config(("App:Id", "a1"), ("App:Listen", "127.0.0.1:7400"), ("App:TicketKeyFile", "k"))),
                Throws.TypeOf<StartupException>().With.Message.Contains("--control"));
            Assert.That(() => AppRole.BuildOptions(Config(("App:Id", "a1"), ("App:Listen", "127.0.0.1:7400"), ("App:Control", "127.0.0.1:1"), ("App:TicketKeyFile", "k"), ("App:Attr:0", "novalue"))),
                Throws.TypeOf<StartupException>().With.Message.Contains("novalue"));
        });
    }
}
