using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Vip.Tests.Reliability.Harness;

namespace Vip.Tests.Reliability;

/// <summary>The namespace lab itself: hosts get their own addresses, a restricted host reaches only its routes, teardown removes everything.</summary>
[TestFixture]
[NonParallelizable]
public class NetNsLabTests
{
    internal static void RequireNamespaces()
    {
        var why = NetNsLab.WhyUnavailable();
        if (why is not null)
        {
            var message = "SKIPPED — network namespaces are not available here, so the multi-host test did NOT run: " + why;
            TestContext.Progress.WriteLine("!!! " + message);
            Assert.Ignore(message);
        }
    }

    [Test]
    public void A_restricted_client_reaches_only_the_hosts_it_is_routed_to_and_servers_see_its_own_address()
    {
        RequireNamespaces();
        using var lab = new NetNsLab();
        var vip = lab.AddHost("vip", 2);
        var tier1 = lab.AddHost("t1", 11);
        var app = lab.AddHost("app", 31);
        var client = lab.AddHost("client", 100, onlyRoutesTo: [vip, app]);

        using var vipListener = Listen(vip, 7000);
        using var tier1Listener = Listen(tier1, 7100);
        using var appListener = Listen(app, 7300);

        Assert.That(ConnectFrom(client, vip.At(7000), vipListener), Is.EqualTo(client.Address), "the VIP sees the client's own address");
        Assert.That(ConnectFrom(client, app.At(7300), appListener), Is.EqualTo(client.Address), "the app server sees the client's own address");
        var ex = Assert.Throws<SocketException>(() => ConnectFrom(client, tier1.At(7100), tier1Listener));
        Assert.That(ex!.SocketErrorCode, Is.EqualTo(SocketError.NetworkUnreachable), "the client has no route to tier-1");
        Assert.That(ConnectFrom(vip, tier1.At(7100), tier1Listener), Is.EqualTo(vip.Address), "the VIP box reaches tier-1");
    }

    [Test]
    public void Disposing_the_lab_deletes_every_namespace_it_created()
    {
        RequireNamespaces();
        string prefix;
        using (var lab = new NetNsLab())
        {
            lab.AddHost("a", 1);
            lab.AddHost("b", 2);
            prefix = lab.Prefix;
            Assert.That(ListNamespaces().Count(n => n.StartsWith(prefix, StringComparison.Ordinal)), Is.EqualTo(3));
        }

        Assert.That(ListNamespaces().Where(n => n.StartsWith(prefix, StringComparison.Ordinal)), Is.Empty);
    }

    private static Socket Listen(NetNsHost host, int port)
    {
        var s = NetNsLab.CreateSocket(host);
        s.Bind(host.At(port));
        s.Listen(16);
        return s;
    }

    // Connects from a socket made in `from`'s namespace; returns the remote address the listener saw.
    private static IPAddress ConnectFrom(NetNsHost from, IPEndPoint to, Socket listener)
    {
        using var s = NetNsLab.CreateSocket(from);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        s.ConnectAsync(to, cts.Token).AsTask().GetAwaiter().GetResult();
        using var accepted = listener.AcceptAsync(cts.Token).AsTask().GetAwaiter().GetResult();
        return ((IPEndPoint)accepted.RemoteEndPoint!).Address;
    }

    private static List<string> ListNamespaces()
    {
        using var p = Process.Start(new ProcessStartInfo("ip", "netns list") { RedirectStandardOutput = true })!;
        var text = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]).ToList();
    }
}
