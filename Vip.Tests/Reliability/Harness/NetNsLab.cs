using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Vip.Tests.Reliability.Harness;

/// <summary>
/// A small network of Linux network namespaces that the test creates and removes: one namespace holding a bridge
/// (the "switch"), and one namespace per host, each with an <c>eth0</c> veth whose peer is a port of the bridge.
/// Every namespace is named with a prefix unique to this lab (<c>viprel-PID-N-</c>), and <see cref="Dispose"/>
/// deletes exactly the namespaces it created, by name.
/// </summary>
/// <remarks>
/// Hosts may be "restricted": their address is a /32 and they get routes only to the hosts named, so any other
/// address on the subnet is unreachable from them (connect fails with ENETUNREACH).
/// Sockets can be created inside a namespace from this process (<see cref="CreateSocket"/>): a fresh thread enters
/// the namespace with setns(2), creates the socket and ends; the socket stays in that namespace.
/// </remarks>
internal sealed class NetNsLab : IDisposable
{
    private const int CloneNewNet = 0x40000000;
    private static int _labs;
    private readonly List<string> _namespaces = [];
    private readonly string _bridgeNs;
    private int _ports;

    public NetNsLab(string subnet = "10.77.0")
    {
        Subnet = subnet;
        Prefix = $"viprel-{Environment.ProcessId}-{Interlocked.Increment(ref _labs)}-";
        _bridgeNs = Prefix + "switch";
        AddNamespace(_bridgeNs);
        Ip("-n", _bridgeNs, "link", "add", "br0", "type", "bridge");
        Ip("-n", _bridgeNs, "link", "set", "br0", "up");
    }

    /// <summary>The first three octets of the lab's /24 (e.g. "10.77.0").</summary>
    public string Subnet { get; }

    /// <summary>The prefix of every namespace name of this lab.</summary>
    public string Prefix { get; }

    /// <summary>Hosts added so far, by name.</summary>
    public Dictionary<string, NetNsHost> Hosts { get; } = [];

    /// <summary>
    /// Why namespaces cannot be used here (not root, no <c>ip</c>, creation refused), or null when they can.
    /// Tries to create and delete one namespace.
    /// </summary>
    public static string? WhyUnavailable()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "network namespaces need Linux";
        }

        if (Environment.UserName != "root" && geteuid() != 0)
        {
            return "network namespaces need root (the tests run as uid " + geteuid() + ")";
        }

        var probe = $"viprel-{Environment.ProcessId}-probe";
        var (code, output) = Run("ip", "netns", "add", probe);
        if (code != 0)
        {
            return $"'ip netns add' failed ({code}): {output.Trim()} — install iproute2 and run as root with CAP_SYS_ADMIN";
        }

        Run("ip", "netns", "del", probe);
        return null;
    }

    /// <summary>
    /// Adds a host: namespace <c>PREFIX+name</c>, <c>eth0</c> with <c>SUBNET.octet</c>, plugged into the bridge.
    /// With <paramref name="onlyRoutesTo"/> the address is a /32 and only those hosts' addresses are routed.
    /// </summary>
    public NetNsHost AddHost(string name, int octet, IEnumerable<NetNsHost>? onlyRoutesTo = null)
    {
        var ns = Prefix + name;
        var address = IPAddress.Parse($"{Subnet}.{octet}");
        var port = "p" + Interlocked.Increment(ref _ports);
        AddNamespace(ns);
        Ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", _bridgeNs);
        Ip("-n", _bridgeNs, "link", "set", port, "master", "br0");
        Ip("-n", _bridgeNs, "link", "set", port, "up");
        Ip("-n", ns, "link", "set", "lo", "up");
        Ip("-n", ns, "link", "set", "eth0", "up");
        if (onlyRoutesTo is null)
        {
            Ip("-n", ns, "addr", "add", $"{address}/24", "dev", "eth0");
        }
        else
        {
            Ip("-n", ns, "addr", "add", $"{address}/32", "dev", "eth0");
            foreach (var peer in onlyRoutesTo)
            {
                Ip("-n", ns, "route", "add", peer.Address.ToString(), "dev", "eth0", "src", address.ToString());
            }
        }

        var host = new NetNsHost(name, ns, address);
        Hosts[name] = host;
        return host;
    }

    /// <summary>Creates a socket inside <paramref name="host"/>'s namespace (see remarks).</summary>
    public static Socket CreateSocket(NetNsHost host, SocketType type = SocketType.Stream, ProtocolType protocol = ProtocolType.Tcp)
    {
        Socket? socket = null;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var fd = File.OpenHandle($"/run/netns/{host.Namespace}");
                if (setns((int)fd.DangerousGetHandle(), CloneNewNet) != 0)
                {
                    throw new InvalidOperationException($"setns({host.Namespace}) failed: errno {Marshal.GetLastPInvokeError()}");
                }

                socket = new Socket(AddressFamily.InterNetwork, type, protocol);
            }
            catch (Exception ex)
            {
                error = ex;
            }
        })
        { IsBackground = true, Name = "netns " + host.Name };
        thread.Start();
        thread.Join();
        return error is null ? socket! : throw new InvalidOperationException($"cannot create a socket in {host.Namespace}", error);
    }

    /// <summary>Runs a command inside a host's namespace and returns its exit code and output.</summary>
    public static (int Code, string Output) Exec(NetNsHost host, params string[] command) => Run("ip", ["netns", "exec", host.Namespace, .. command]);

    /// <summary>Deletes every namespace of this lab (by name). Deleting a namespace removes its veths.</summary>
    public void Dispose()
    {
        foreach (var ns in Enumerable.Reverse(_namespaces))
        {
            Run("ip", "netns", "del", ns);
        }

        _namespaces.Clear();
    }

    private void AddNamespace(string ns)
    {
        Ip("netns", "add", ns);
        _namespaces.Add(ns);
    }

    private static void Ip(params string[] args)
    {
        var (code, output) = Run("ip", args);
        if (code != 0)
        {
            throw new InvalidOperationException($"ip {string.Join(' ', args)} failed ({code}): {output.Trim()}");
        }
    }

    private static (int, string) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        try
        {
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(30_000))
            {
                p.Kill();
                return (-1, $"{file} timed out");
            }

            return (p.ExitCode, stdout.Result + stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (-1, $"cannot run {file}: {ex.Message}");
        }
    }

#pragma warning disable SYSLIB1054 // DllImport keeps the test project free of AllowUnsafeBlocks; two trivial signatures.
    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);

    [DllImport("libc")]
    private static extern uint geteuid();
#pragma warning restore SYSLIB1054
}

/// <summary>A host of a <see cref="NetNsLab"/>: its name, namespace and address.</summary>
internal sealed record NetNsHost(string Name, string Namespace, IPAddress Address)
{
    /// <summary>This host's address with <paramref name="port"/>.</summary>
    public IPEndPoint At(int port) => new(Address, port);
}
