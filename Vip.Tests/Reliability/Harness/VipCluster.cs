using System.Net;
using Vip.Tests.Hosting;

namespace Vip.Tests.Reliability.Harness;

/// <summary>Where one daemon of a <see cref="VipCluster"/> runs: its own address, and its namespace when in a <see cref="NetNsLab"/>.</summary>
internal sealed record ClusterHost(IPAddress Address, string? Namespace);

/// <summary>
/// A whole Vip system as separate <c>vipd</c> processes: one VIP box, two tier-1, two tier-2 and three app servers,
/// each on its own address (loopback hosts or namespace hosts), with fixed ports per role. Every process is killed
/// by pid on dispose; the working folder (ticket keys, stores) is deleted.
/// </summary>
internal sealed class VipCluster : IDisposable
{
    public const int VipPort = 7000;
    public const int Tier1Port = 7100;
    public const int Tier2Port = 7200;
    public const int ControlPort = 7201;
    public const int AppPort = 7300;

    private readonly string _dir;

    /// <param name="place">Where each daemon runs (by name: vip, t1a, t1b, t2a, t2b, app1..app3).</param>
    /// <param name="trustedProxies">
    /// The network tier-1 trusts for PROXY headers: the VIP's own /32 between namespaces; on loopback the VIP's
    /// outgoing connections come from 127.0.0.1 (the kernel's source for 127/8), so the test passes 127.0.0.0/8.
    /// </param>
    /// <param name="appEnvironment">Environment of the app servers (log levels).</param>
    public VipCluster(Func<string, ClusterHost> place, string? trustedProxies = null, IReadOnlyDictionary<string, string>? appEnvironment = null)
    {
        _dir = Path.Combine(Path.GetTempPath(), $"vip-rel-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_dir);
        KeyFile = Path.Combine(_dir, "tickets.key");

        VipHost = place("vip");
        Tier1Hosts = [place("t1a"), place("t1b")];
        Tier2Hosts = [place("t2a"), place("t2b")];
        AppHosts = [place("app1"), place("app2"), place("app3")];

        var env = new Dictionary<string, string> { ["VIPD_Logging__LogLevel__Default"] = "Information" };
        var control = string.Join(',', Tier2Hosts.Select(h => $"{h.Address}:{ControlPort}"));
        var tier2Tasks = string.Join(',', Tier2Hosts.Select(h => $"{h.Address}:{Tier2Port}"));
        Tier2 = [.. Tier2Hosts.Select((h, i) => new VipdProcess($"tier2-{(char)('a' + i)}", "tier2",
            ["--id", $"t2{(char)('a' + i)}", "--listen", $"{h.Address}:{Tier2Port}", "--control", $"{h.Address}:{ControlPort}",
             "--db", Path.Combine(_dir, $"t2{(char)('a' + i)}.db"), "--ticket-key-file", KeyFile], h.Namespace, env))];
        string[] kinds = ["cpu", "gpu", "cpu"];
        App = [.. AppHosts.Select((h, i) => new VipdProcess($"app-{i + 1}", "app",
            ["--id", $"app{i + 1}", "--listen", $"{h.Address}:{AppPort}", "--control", control, "--ticket-key-file", KeyFile,
             "--attr", $"kind={kinds[i]}", "--attr", $"n={i + 1}", "--capacity", "64"], h.Namespace, appEnvironment ?? env))];
        Tier1 = [.. Tier1Hosts.Select((h, i) => new VipdProcess($"tier1-{(char)('a' + i)}", "tier1",
            ["--id", $"t1{(char)('a' + i)}", "--listen", $"{h.Address}:{Tier1Port}", "--tier2", tier2Tasks,
             "--trusted-proxies", trustedProxies ?? $"{VipHost.Address}/32"], h.Namespace, env))];
        Vip = new VipdProcess("vip", "vip",
            ["--listen", $"{VipHost.Address}:{VipPort}", "--backends", string.Join(',', Tier1Hosts.Select(h => $"{h.Address}:{Tier1Port}")),
             "--proxy-protocol"], VipHost.Namespace, env);
    }

    public string KeyFile { get; }

    public ClusterHost VipHost { get; }

    public ClusterHost[] Tier1Hosts { get; }

    public ClusterHost[] Tier2Hosts { get; }

    public ClusterHost[] AppHosts { get; }

    public VipdProcess Vip { get; }

    public VipdProcess[] Tier1 { get; }

    public VipdProcess[] Tier2 { get; }

    public VipdProcess[] App { get; }

    public IEnumerable<VipdProcess> All => [Vip, .. Tier1, .. Tier2, .. App];

    public IPEndPoint VipEndPoint => new(VipHost.Address, VipPort);

    /// <summary>The roles this build of vipd must have for a cluster; a missing one is named.</summary>
    public static string? MissingRole()
    {
        foreach (var role in (string[])["vip", "tier1", "tier2", "app", "keygen"])
        {
            if (!VipdProcess.HasRole(role))
            {
                return role;
            }
        }

        return null;
    }

    /// <summary>
    /// Writes the ticket keys and starts everything, back to front (tier-2, app servers, tier-1, VIP), waiting for each
    /// listener with <paramref name="canConnect"/> (a TCP connect from wherever the test can reach the host).
    /// </summary>
    public void Start(Func<IPEndPoint, bool> canConnect, TimeSpan timeout)
    {
        var (code, stdout, stderr) = VipdProcess.RunToEnd("keygen", ["--out", KeyFile], TimeSpan.FromSeconds(60));
        if (code != 0)
        {
            Assert.Fail($"vipd keygen failed ({code}): {stdout} {stderr}");
        }

        foreach (var p in Tier2)
        {
            p.Start();
        }

        for (var i = 0; i < Tier2.Length; i++)
        {
            WaitFor(Tier2[i], new IPEndPoint(Tier2Hosts[i].Address, ControlPort), canConnect, timeout);
        }

        foreach (var p in App)
        {
            p.Start();
        }

        foreach (var p in Tier1)
        {
            p.Start();
        }

        Vip.Start();
        for (var i = 0; i < App.Length; i++)
        {
            WaitFor(App[i], new IPEndPoint(AppHosts[i].Address, AppPort), canConnect, timeout);
        }

        for (var i = 0; i < Tier1.Length; i++)
        {
            WaitFor(Tier1[i], new IPEndPoint(Tier1Hosts[i].Address, Tier1Port), canConnect, timeout);
        }

        WaitFor(Vip, VipEndPoint, canConnect, timeout);
    }

    /// <summary>Waits until <paramref name="process"/> accepts connections on <paramref name="endpoint"/>.</summary>
    public static void WaitFor(VipdProcess process, IPEndPoint endpoint, Func<IPEndPoint, bool> canConnect, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (!process.IsRunning)
            {
                Assert.Fail($"{process.Name} exited before listening on {endpoint}:\n{process.Output()}");
            }

            if (canConnect(endpoint))
            {
                return;
            }

            Thread.Sleep(100);
        }

        Assert.Fail($"{process.Name} did not listen on {endpoint} within {timeout.TotalSeconds} s:\n{process.Output()}");
    }

    /// <summary>All kept output, for failure messages.</summary>
    public string Output() => string.Join("\n", All.Select(p => p.Output()));

    public void Dispose()
    {
        foreach (var p in All)
        {
            p.Dispose();
        }

        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
