using System.Net;
using System.Net.Sockets;

namespace Vip.Tests.Hosting;

/// <summary>Bad configuration ends start-up of the real vipd with exit code 78 and one clear line on stderr.</summary>
/// <remarks>Each case starts a process (about 2 s of JIT on this machine); the cheaper cases run in-process
/// in <see cref="VipdInProcessTests"/>.</remarks>
[TestFixture]
[Parallelizable(ParallelScope.Children)]
public sealed class StartupErrorTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(60);

    private static async Task<string> FailsWithOneLineAsync(string[] args, IReadOnlyDictionary<string, string?>? env = null)
    {
        var (code, stdout, stderr) = await VipdProcess.RunAsync(args, Generous, env);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Multiple(() =>
        {
            Assert.That(code, Is.EqualTo(78), "EX_CONFIG; stderr: " + stderr);
            Assert.That(lines, Has.Length.EqualTo(1), "exactly one line on stderr: " + stderr);
            Assert.That(stdout, Is.Empty);
        });
        Assert.That(lines[0], Does.StartWith($"vipd {args[0]}: "));
        return lines[0];
    }

    [Test]
    public async Task Unparsable_listen_address_names_the_key_and_the_value()
    {
        var line = await FailsWithOneLineAsync(["vip", "--listen", "127.0.0.1:http", "--backends", "127.0.0.1:9"]);
        Assert.That(line, Does.Contain("Vip:Listen").And.Contain("'127.0.0.1:http'"));
    }

    [Test]
    public async Task Empty_backend_list_names_the_key()
    {
        var line = await FailsWithOneLineAsync(["vip", "--listen", "127.0.0.1:0", "--backends", ","]);
        Assert.That(line, Does.Contain("Vip:Backends"));
    }

    [Test]
    public async Task Port_in_use_names_the_key_and_the_endpoint()
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        var ep = (IPEndPoint)taken.LocalEndPoint!;
        var line = await FailsWithOneLineAsync(["vip", "--listen", ep.ToString(), "--backends", "127.0.0.1:9"]);
        Assert.That(line, Does.Contain("cannot listen").And.Contain("already in use").IgnoreCase);
    }

    [Test]
    public async Task Missing_config_file_names_the_file()
    {
        var path = Path.Combine(Path.GetTempPath(), $"vip-missing-{Guid.NewGuid():N}.json");
        var line = await FailsWithOneLineAsync(["vip", "--listen", "127.0.0.1:0", "--backends", "127.0.0.1:9", "--config", path]);
        Assert.That(line, Is.EqualTo($"vipd vip: --config: file '{path}' not found"));
    }

    [Test]
    public async Task Malformed_config_file_says_where()
    {
        var path = Path.Combine(Path.GetTempPath(), $"vip-bad-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(path, "{ \"Vip\": { \"Listen\": }");
        try
        {
            var line = await FailsWithOneLineAsync(["vip", "--config", path]);
            Assert.That(line, Does.Contain(path).And.Contain("LineNumber"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public async Task Metrics_port_in_use_fails_start_up()
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        var line = await FailsWithOneLineAsync(["vip", "--listen", "127.0.0.1:0", "--backends", "127.0.0.1:9", "--metrics", taken.LocalEndPoint!.ToString()!]);
        Assert.That(line, Does.Contain("Metrics:Listen: cannot listen"));
    }
}
