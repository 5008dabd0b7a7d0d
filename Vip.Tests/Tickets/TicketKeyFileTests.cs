using System.Text;
using Vip.Daemons.Hosting;
using Vip.Daemons.Roles;
using Vip.Tickets;

namespace Vip.Tests.Tickets;

[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // file modes are Unix's
public class TicketKeyFileTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "vip-keys-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    [Test]
    public void Key_file_round_trips_every_key_and_the_active_id()
    {
        var ring = TicketKeyRing.CreateNew().WithNewKey(activate: true).WithNewKey(activate: false);
        var path = PathOf("keys.json");
        TicketKeyFile.Save(path, ring, overwrite: false);

        var loaded = TicketKeyFile.Load(path);

        Assert.That(loaded.Active.Id, Is.EqualTo(2u));
        Assert.That(loaded.Keys.Select(k => k.Id), Is.EqualTo(new uint[] { 1, 2, 3 }));
        for (var i = 0; i < 3; i++)
        {
            Assert.That(loaded.Keys[i].Secret.ToArray(), Is.EqualTo(ring.Keys[i].Secret.ToArray()));
            Assert.That(loaded.Keys[i].Secret.Length, Is.EqualTo(32));
        }

        Assert.That(ring.Keys[0].Secret.ToArray(), Is.Not.EqualTo(ring.Keys[1].Secret.ToArray()));
    }

    [Test]
    public void Key_file_is_created_readable_by_its_owner_only()
    {
        var path = PathOf("keys.json");
        TicketKeyFile.Save(path, TicketKeyRing.CreateNew(), overwrite: false);
        Assert.That(File.GetUnixFileMode(path), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.That(Directory.GetFiles(_dir), Has.Length.EqualTo(1), "no temporary file is left behind");
    }

    [Test]
    public void Existing_key_file_is_not_overwritten_without_force()
    {
        var path = PathOf("keys.json");
        var first = TicketKeyRing.CreateNew();
        TicketKeyFile.Save(path, first, overwrite: false);

        var ex = Assert.Throws<TicketKeyFileException>(() => TicketKeyFile.Save(path, TicketKeyRing.CreateNew(), overwrite: false));
        Assert.That(ex!.Message, Does.Contain(path).And.Contain("already exists"));
        Assert.That(TicketKeyFile.Load(path).Active.Secret.ToArray(), Is.EqualTo(first.Active.Secret.ToArray()));
    }

    [Test]
    public void Key_file_open_to_group_or_others_is_refused()
    {
        var path = PathOf("keys.json");
        TicketKeyFile.Save(path, TicketKeyRing.CreateNew(), overwrite: false);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);

        var ex = Assert.Throws<TicketKeyFileException>(() => TicketKeyFile.Load(path));
        Assert.That(ex!.Message, Does.Contain("chmod 600").And.Contain("0640"));
        Assert.That(TicketKeyFile.Load(path, requireOwnerOnly: false).Keys, Has.Count.EqualTo(1));
    }

    [TestCase("", "not a valid ticket key file")]
    [TestCase("[1,2]", "not a JSON object")]
    [TestCase("{\"format\":\"other\",\"active\":1,\"keys\":[]}", "\"format\"")]
    [TestCase("{\"format\":\"vip-ticket-keys/1\",\"active\":1,\"keys\":[{\"id\":1,\"secret\":\"AAAA\"}]}", "the secret is 3 bytes")]
    [TestCase("{\"format\":\"vip-ticket-keys/1\",\"active\":2,\"keys\":[{\"id\":1,\"secret\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}", "active key id 2")]
    [TestCase("{\"format\":\"vip-ticket-keys/1\",\"active\":1,\"keys\":[{\"id\":1,\"secret\":\"not base64!\"}]}", "not a valid ticket key file")]
    public void Invalid_key_file_is_refused_with_the_path_and_the_reason(string content, string reason)
    {
        var path = PathOf("keys.json");
        File.WriteAllText(path, content, new UTF8Encoding(false));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        var ex = Assert.Throws<TicketKeyFileException>(() => TicketKeyFile.Load(path));
        Assert.That(ex!.Message, Does.StartWith($"ticket key file '{path}'").And.Contain(reason));
        Assert.That(ex.Message, Does.Not.Contain('\n'));
    }

    [Test]
    public void Missing_key_file_says_how_to_make_one()
    {
        var ex = Assert.Throws<TicketKeyFileException>(() => TicketKeyFile.Load(PathOf("none.json")));
        Assert.That(ex!.Message, Does.Contain("vipd keygen"));
    }

    [Test]
    public async Task Keygen_writes_an_owner_only_file_and_refuses_to_overwrite_it()
    {
        var path = PathOf("k.json");
        var role = new KeygenRole();

        Assert.That(await role.RunAsync(["--out", path]), Is.EqualTo(ExitCodes.Ok));
        var first = TicketKeyFile.Load(path);
        Assert.That(File.GetUnixFileMode(path), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));

        var ex = Assert.ThrowsAsync<StartupException>(() => role.RunAsync(["--out", path]));
        Assert.That(ex!.Message, Does.Contain("already exists").And.Contain("--force"));
        Assert.That(TicketKeyFile.Load(path).Active.Secret.ToArray(), Is.EqualTo(first.Active.Secret.ToArray()));

        Assert.That(await role.RunAsync(["--out", path, "--force"]), Is.EqualTo(ExitCodes.Ok));
        Assert.That(TicketKeyFile.Load(path).Active.Secret.ToArray(), Is.Not.EqualTo(first.Active.Secret.ToArray()));
    }

    [Test]
    public async Task Keygen_rotates_keys_step_by_step()
    {
        var path = PathOf("k.json");
        var role = new KeygenRole();
        await role.RunAsync(["--out", path]);

        await role.RunAsync(["--out", path, "--add"]);
        var ring = TicketKeyFile.Load(path);
        Assert.That((ring.Keys.Count, ring.Active.Id), Is.EqualTo((2, 1u)), "added key is not active yet");

        await role.RunAsync(["--out", path, "--activate", "2"]);
        Assert.That(TicketKeyFile.Load(path).Active.Id, Is.EqualTo(2u));

        var ex = Assert.ThrowsAsync<StartupException>(() => role.RunAsync(["--out", path, "--remove", "2"]));
        Assert.That(ex!.Message, Does.Contain("active key"));

        await role.RunAsync(["--out", path, "--remove", "1"]);
        ring = TicketKeyFile.Load(path);
        Assert.That(ring.Keys.Select(k => k.Id), Is.EqualTo(new uint[] { 2 }));

        await role.RunAsync(["--out", path, "--add", "--activate"]);
        Assert.That(TicketKeyFile.Load(path).Active.Id, Is.EqualTo(3u));
        Assert.That(File.GetUnixFileMode(path), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
    }

    [Test]
    public void Keygen_without_out_or_with_a_missing_directory_is_one_clear_line()
    {
        var role = new KeygenRole();
        Assert.That(Assert.ThrowsAsync<StartupException>(() => role.RunAsync([]))!.Message, Does.Contain("--out PATH is required"));
        var bad = Path.Combine(_dir, "no-such-dir", "k.json");
        Assert.That(Assert.ThrowsAsync<StartupException>(() => role.RunAsync(["--out", bad]))!.Message, Does.Contain("does not exist"));
        Assert.That(Assert.ThrowsAsync<StartupException>(() => role.RunAsync(["--out", PathOf("x.json"), "--add"]))!.Message, Does.Contain("does not exist"));
    }
}
