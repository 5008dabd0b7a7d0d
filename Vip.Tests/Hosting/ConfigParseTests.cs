using System.Net;
using Microsoft.Extensions.Configuration;
using Vip.Daemons.Hosting;

namespace Vip.Tests.Hosting;

[TestFixture]
public sealed class ConfigParseTests
{
    [TestCase("127.0.0.1:7000", "127.0.0.1", 7000)]
    [TestCase("[::1]:7000", "::1", 7000)]
    [TestCase("localhost:80", "127.0.0.1", 80)]
    [TestCase("*:0", "0.0.0.0", 0)]
    [TestCase(" 10.0.0.5:65535 ", "10.0.0.5", 65535)]
    public void Endpoint_parses_addresses_and_ports(string text, string address, int port)
        => Assert.That(ConfigParse.Endpoint(text, "K"), Is.EqualTo(new IPEndPoint(IPAddress.Parse(address), port)));

    [TestCase("127.0.0.1", "HOST:PORT")]
    [TestCase("127.0.0.1:", "HOST:PORT")]
    [TestCase("127.0.0.1:65536", "a port")]
    [TestCase("127.0.0.1:-1", "a port")]
    [TestCase("::1:80", "IPv6 in brackets")]
    [TestCase("1.2:80", "IP address")]
    [TestCase("tier1.example:80", "IP address")]
    [TestCase("[127.0.0.1]:80", "IPv6")]
    public void Endpoint_refuses_garbage_naming_key_and_value(string text, string expected)
    {
        var ex = Assert.Throws<StartupException>(() => ConfigParse.Endpoint(text, "Vip:Listen"))!;
        Assert.That(ex.Message, Does.StartWith($"Vip:Listen: '{text.Trim()}' is not").And.Contain(expected));
    }

    [Test]
    public void Every_role_takes_the_same_duration_forms_in_bound_sections_and_read_keys()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Tier2:Listen"] = "127.0.0.1:0",
            ["Tier2:Control"] = "127.0.0.1:0",
            ["Tier2:Db"] = "/tmp/never-opened.db",
            ["Tier2:TicketKeyFile"] = "/tmp/never-read.key",
            ["Tier2:TicketLifetime"] = "45s",
            ["Tier2:RegistrationGrace"] = "1500ms",
            ["Tier2:ControlSendTimeout"] = "00:00:07",
            ["Selection:HeartbeatInterval"] = "500ms", // a bound section
        }).Build();

        var options = Vip.Daemons.Roles.Tier2Role.BuildOptions(config);

        Assert.Multiple(() =>
        {
            Assert.That(options.TicketLifetime, Is.EqualTo(TimeSpan.FromSeconds(45)));
            Assert.That(options.RegistrationGrace, Is.EqualTo(TimeSpan.FromMilliseconds(1500)));
            Assert.That(options.ControlSendTimeout, Is.EqualTo(TimeSpan.FromSeconds(7)));
            Assert.That(options.Selection.HeartbeatInterval, Is.EqualTo(TimeSpan.FromMilliseconds(500)));
        });
    }

    [Test]
    public void A_ticket_lifetime_app_servers_would_refuse_fails_start_up()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Tier2:Listen"] = "127.0.0.1:0",
            ["Tier2:Control"] = "127.0.0.1:0",
            ["Tier2:Db"] = "/tmp/never-opened.db",
            ["Tier2:TicketKeyFile"] = "/tmp/never-read.key",
            ["Tier2:TicketLifetime"] = "10m",
        }).Build();

        var ex = Assert.Throws<StartupException>(() => Vip.Daemons.Roles.Tier2Role.BuildOptions(config))!;
        Assert.That(ex.Message, Does.Contain("TicketLifetime must be 1 s .. 5 min"));
    }

    [Test]
    public void Endpoint_can_refuse_port_zero()
        => Assert.That(() => ConfigParse.Endpoint("127.0.0.1:0", "K", allowPortZero: false), Throws.TypeOf<StartupException>());

    [Test]
    public void Endpoint_list_reads_commas_and_array_entries()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Vip:Backends"] = "127.0.0.1:1, 127.0.0.1:2",
            ["Vip:Backends:0"] = "127.0.0.1:3",
            ["Vip:Backends:1"] = "127.0.0.1:4,127.0.0.1:5",
        }).Build();
        Assert.That(ConfigParse.Endpoints(config, "Vip:Backends").Select(e => e.Port), Is.EqualTo(new[] { 1, 2, 3, 4, 5 }));
    }

    [Test]
    public void Empty_backend_list_fails_start_up()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Vip:Backends"] = " , " }).Build();
        var ex = Assert.Throws<StartupException>(() => ConfigParse.Endpoints(config, "Vip:Backends"))!;
        Assert.That(ex.Message, Is.EqualTo("Vip:Backends: the list is empty (give at least one HOST:PORT)"));
    }

    [Test]
    public void Duplicate_backend_fails_start_up()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["B"] = "127.0.0.1:1,127.0.0.1:1" }).Build();
        Assert.That(() => ConfigParse.Endpoints(config, "B"), Throws.TypeOf<StartupException>().With.Message.Contains("listed twice"));
    }

    [Test]
    public void Missing_ticket_key_file_fails_start_up_naming_the_path()
    {
        var path = Path.Combine(Path.GetTempPath(), $"vip-no-key-{Guid.NewGuid():N}");
        var ex = Assert.Throws<StartupException>(() => ConfigParse.ReadableFile(path, "Tickets:KeyFile"))!;
        Assert.That(ex.Message, Is.EqualTo($"Tickets:KeyFile: file '{path}' not found"));
    }

    [Test]
    public void Readable_file_is_returned_as_a_full_path()
    {
        var path = Path.GetTempFileName();
        try
        {
            Assert.That(ConfigParse.ReadableFile(path, "K"), Is.EqualTo(Path.GetFullPath(path)));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void Database_path_in_a_missing_folder_fails_start_up()
    {
        var path = Path.Combine(Path.GetTempPath(), $"vip-no-dir-{Guid.NewGuid():N}", "store.db");
        Assert.That(() => ConfigParse.WritableFile(path, "Store:Path"),
            Throws.TypeOf<StartupException>().With.Message.EqualTo($"Store:Path: folder '{Path.GetDirectoryName(path)}' does not exist"));
    }

    [Test]
    public void Database_path_in_an_unwritable_folder_fails_start_up()
    {
        // Root ignores permission bits, so as root use sysfs, which refuses new files to everyone.
        string folder;
        if (Environment.IsPrivilegedProcess || OperatingSystem.IsWindows())
        {
            folder = "/sys";
        }
        else
        {
            folder = Directory.CreateTempSubdirectory("vip-ro-").FullName;
            File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        }

        var path = Path.Combine(folder, "store.db");
        Assert.That(() => ConfigParse.WritableFile(path, "Store:Path"),
            Throws.TypeOf<StartupException>().With.Message.StartsWith($"Store:Path: cannot write '{path}'"));
        Assert.That(Directory.GetFiles(folder, ".vipd-write-probe-*"), Is.Empty);
    }

    [Test]
    public void Writable_database_path_leaves_no_probe_behind()
    {
        var folder = Directory.CreateTempSubdirectory("vip-rw-").FullName;
        try
        {
            var path = Path.Combine(folder, "store.db");
            Assert.That(ConfigParse.WritableFile(path, "Store:Path"), Is.EqualTo(path));
            Assert.That(Directory.GetFileSystemEntries(folder), Is.Empty);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestCase("250ms", 250)]
    [TestCase("30s", 30_000)]
    [TestCase("1.5s", 1_500)]
    [TestCase("5m", 300_000)]
    [TestCase("00:00:02", 2_000)]
    public void Duration_parses_units(string text, int ms)
        => Assert.That(ConfigParse.Duration(text, "K", TimeSpan.Zero, TimeSpan.FromHours(1)), Is.EqualTo(TimeSpan.FromMilliseconds(ms)));

    [Test]
    public void Duration_out_of_range_or_garbage_fails()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => ConfigParse.Duration("2h", "K", TimeSpan.Zero, TimeSpan.FromHours(1)), Throws.TypeOf<StartupException>().With.Message.Contains("out of range"));
            Assert.That(() => ConfigParse.Duration("soon", "K", TimeSpan.Zero, TimeSpan.FromHours(1)), Throws.TypeOf<StartupException>().With.Message.Contains("'soon'"));
            Assert.That(() => ConfigParse.Int32("0", "Capacity", 1, 100), Throws.TypeOf<StartupException>().With.Message.EqualTo("Capacity: 0 is out of range (1 to 100)"));
        });
    }
}
