using System.Globalization;
using System.Net;

namespace Vip.Benchmarks.Compare;

/// <summary>A forwarder under test: its name in the table, the address clients use, and its process.</summary>
internal sealed record Proxy(string Name, IPEndPoint EndPoint, ChildProcess Process);

/// <summary>
/// Starts peers (backends, proxies) for one scenario and stops every one of them, by pid, when disposed.
/// Config files go to the run's temporary directory.
/// </summary>
internal sealed class PeerScope(CompareContext context) : IAsyncDisposable
{
    /// <summary>HAProxy's connection cap outside the memory scenario: the open-file limit here is 20,000.</summary>
    public const int HaproxyMaxConnections = 4000;

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private readonly List<ChildProcess> _processes = [];
    private int _sequence;

    public IReadOnlyList<ChildProcess> Processes => _processes;

    /// <summary>A redis-server without persistence, on a fresh loopback port.</summary>
    public async Task<IPEndPoint> RedisAsync(CancellationToken cancellationToken)
    {
        var endPoint = Loopback.FreeTcpEndPoint();
        var process = Track(ChildProcess.Start("redis-server", context.Tools.RedisServer.Require(),
        [
            "--bind", "127.0.0.1", "--port", Port(endPoint), "--save", "", "--appendonly", "no",
            "--maxclients", "10000", "--loglevel", "warning", "--protected-mode", "no",
            "--dir", context.TempDirectory,
        ]));
        await Loopback.WaitForTcpAsync(endPoint, process, StartTimeout, cancellationToken);
        return endPoint;
    }

    /// <summary>
    /// An iperf3 server; it serves one test at a time, which is how the scenario uses it. Readiness comes from its
    /// output, not a probe connection: iperf3 takes every connection for a test, and an aborted one can fail the next.
    /// </summary>
    public async Task<IPEndPoint> IperfServerAsync(CancellationToken cancellationToken)
    {
        var endPoint = Loopback.FreeTcpEndPoint();
        var process = Track(ChildProcess.Start("iperf3 -s", context.Tools.Iperf3.Require(),
            ["-s", "-B", "127.0.0.1", "-p", Port(endPoint), "--forceflush"]));
        await process.WaitForOutputAsync("Server listening", StartTimeout, cancellationToken);
        return endPoint;
    }

    /// <summary>HAProxy in TCP mode, 2 threads, round robin over <paramref name="backends"/>.</summary>
    public async Task<Proxy> HaproxyAsync(IReadOnlyList<IPEndPoint> backends, CancellationToken cancellationToken, int maxConnections = HaproxyMaxConnections, TimeSpan? idleTimeout = null)
    {
        var endPoint = Loopback.FreeTcpEndPoint();
        var timeout = (int)(idleTimeout ?? TimeSpan.FromMinutes(1)).TotalSeconds;
        var servers = string.Join("\n", backends.Select((b, i) => $"    server s{i} {b.Text()}"));
        var config = $"""
            global
                maxconn {maxConnections}
                nbthread 2

            defaults
                mode tcp
                maxconn {maxConnections}
                timeout connect 5s
                timeout client {timeout}s
                timeout server {timeout}s

            frontend vip
                bind {endPoint.Text()}
                default_backend pool

            backend pool
                balance roundrobin
            {servers}

            """;
        var file = WriteConfig("haproxy", "cfg", config);
        var process = Track(ChildProcess.Start("haproxy", context.Tools.Haproxy.Require(), ["-db", "-f", file]));
        await Loopback.WaitForTcpAsync(endPoint, process, StartTimeout, cancellationToken);
        return new Proxy("HAProxy", endPoint, process);
    }

    /// <summary>
    /// The VIP box: <c>vipd vip --listen … [--udp-listen …] --backends …</c>, round robin over <paramref name="backends"/>.
    /// For UDP the backends must answer TCP on the same port numbers too (the VIP box health-checks over TCP).
    /// </summary>
    public async Task<Proxy> VipBoxAsync(IReadOnlyList<IPEndPoint> backends, bool udp, CancellationToken cancellationToken, IEnumerable<string>? extraArgs = null)
    {
        var tcp = Loopback.FreeTcpEndPoint();
        List<string> args = ["--listen", tcp.Text()];
        IPEndPoint? udpEndPoint = null;
        if (udp)
        {
            udpEndPoint = Loopback.FreeTcpAndUdpEndPoint();
            args.AddRange(["--udp-listen", udpEndPoint.Text()]);
        }

        args.AddRange(["--backends", string.Join(',', backends.Select(b => b.Text()))]);
        args.AddRange(extraArgs ?? []);
        var process = Track(context.Vipd.Start("vipd vip", "vip", args));
        await Loopback.WaitForTcpAsync(tcp, process, StartTimeout, cancellationToken);
        if (udpEndPoint is not null)
        {
            await Loopback.WaitForUdpEchoAsync(udpEndPoint, process, StartTimeout, cancellationToken);
        }

        return new Proxy("VIP box", udpEndPoint ?? tcp, process);
    }

    /// <summary>nginx's <c>stream</c> module proxying UDP to <paramref name="backend"/>, 2 workers (as HAProxy has 2 threads).</summary>
    public async Task<Proxy> NginxUdpAsync(IPEndPoint backend, CancellationToken cancellationToken)
    {
        var endPoint = Loopback.FreeTcpAndUdpEndPoint();
        var dir = Directory.CreateDirectory(Path.Combine(context.TempDirectory, $"nginx-{Interlocked.Increment(ref _sequence)}")).FullName;
        var config = $$"""
            load_module {{Toolbox.NginxStreamModule}};
            daemon off;
            master_process on;
            worker_processes 2;
            pid {{dir}}/nginx.pid;
            error_log {{dir}}/error.log warn;
            events { worker_connections 4096; }
            stream {
                upstream echo { server {{backend.Text()}}; }
                server {
                    listen {{endPoint.Text()}} udp reuseport;
                    proxy_pass echo;
                    proxy_timeout 30s;
                }
            }

            """;
        File.WriteAllText(Path.Combine(dir, "nginx.conf"), config);
        var process = Track(ChildProcess.Start("nginx", context.Tools.Nginx.Require(),
            ["-p", dir, "-c", Path.Combine(dir, "nginx.conf"), "-e", Path.Combine(dir, "error.log")]));
        await Loopback.WaitForUdpEchoAsync(endPoint, process, StartTimeout, cancellationToken);
        return new Proxy("nginx stream", endPoint, process);
    }

    /// <summary>socat relaying UDP (one child per client address), the fallback where nginx is absent.</summary>
    public async Task<Proxy> SocatUdpAsync(IPEndPoint backend, CancellationToken cancellationToken)
    {
        var endPoint = Loopback.FreeTcpAndUdpEndPoint();
        var process = Track(ChildProcess.Start("socat", context.Tools.Socat.Require(),
            ["-T", "30", $"UDP4-LISTEN:{Port(endPoint)},bind=127.0.0.1,reuseaddr,fork", $"UDP4:{backend.Text()}"]));
        await Loopback.WaitForUdpEchoAsync(endPoint, process, StartTimeout, cancellationToken);
        return new Proxy("socat", endPoint, process);
    }

    /// <summary>Starts any vipd role as a tracked peer (the chain scenario's tiers).</summary>
    public ChildProcess StartVipd(string name, string role, IEnumerable<string> args) => Track(context.Vipd.Start(name, role, args));

    /// <summary>Stops one peer now (the memory scenario measures proxies one at a time).</summary>
    public async Task StopAsync(ChildProcess process)
    {
        await process.StopAsync();
    }

    public async ValueTask DisposeAsync()
    {
        // Proxies were started after their backends: stop in reverse so nothing reconnects to a dead backend.
        for (var i = _processes.Count - 1; i >= 0; i--)
        {
            await _processes[i].DisposeAsync();
        }

        _processes.Clear();
    }

    private static string Port(IPEndPoint endPoint) => endPoint.Port.ToString(CultureInfo.InvariantCulture);

    public ChildProcess Track(ChildProcess process)
    {
        _processes.Add(process);
        return process;
    }

    private string WriteConfig(string name, string extension, string text)
    {
        var file = Path.Combine(context.TempDirectory, $"{name}-{Interlocked.Increment(ref _sequence)}.{extension}");
        File.WriteAllText(file, text);
        return file;
    }
}
