namespace Vip.Benchmarks.Compare;

/// <summary>One external program the harness drives, and the Debian package that provides it.</summary>
internal sealed record Tool(string Name, string? Path, string Package)
{
    public bool Installed => Path is not null;

    /// <summary>The cell text for a figure this tool could not produce because it is not installed.</summary>
    public string Missing => $"missing: {Name} (apt-get install {Package})";

    public string Require() => Path ?? throw new PeerFailedException(Missing);
}

/// <summary>The peers and load tools found on this machine. Finds only; never installs.</summary>
internal sealed class Toolbox
{
    /// <summary>Where Debian's libnginx-mod-stream puts the stream module (nginx loads it with load_module).</summary>
    public const string NginxStreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so";

    private static readonly string[] ExtraDirectories = ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/local/bin"];

    private Toolbox()
    {
        Haproxy = Find("haproxy", "haproxy");
        Iperf3 = Find("iperf3", "iperf3");
        RedisServer = Find("redis-server", "redis-server");
        RedisBenchmark = Find("redis-benchmark", "redis-tools");
        Nginx = Find("nginx", "nginx libnginx-mod-stream");
        Socat = Find("socat", "socat");
        Dotnet = FindDotnet();
    }

    public Tool Haproxy { get; }

    public Tool Iperf3 { get; }

    public Tool RedisServer { get; }

    public Tool RedisBenchmark { get; }

    public Tool Nginx { get; }

    public Tool Socat { get; }

    public Tool Dotnet { get; }

    /// <summary>nginx can proxy UDP only with the stream module.</summary>
    public bool NginxHasStream => Nginx.Installed && File.Exists(NginxStreamModule);

    public IEnumerable<Tool> All => [Haproxy, Iperf3, RedisServer, RedisBenchmark, Nginx, Socat, Dotnet];

    public static Toolbox Discover() => new();

    private static Tool Find(string name, string package) => new(name, Which(name), package);

    private static string? Which(string name)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(ExtraDirectories))
        {
            var candidate = System.IO.Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static Tool FindDotnet()
    {
        // `dotnet run` starts the benchmark's own apphost, so the muxer is found the way the SDK documents it.
        var fromHost = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (fromHost is not null && File.Exists(fromHost))
        {
            return new Tool("dotnet", fromHost, "dotnet-sdk-10.0");
        }

        var root = Environment.GetEnvironmentVariable("DOTNET_ROOT");
        if (root is not null && File.Exists(System.IO.Path.Combine(root, "dotnet")))
        {
            return new Tool("dotnet", System.IO.Path.Combine(root, "dotnet"), "dotnet-sdk-10.0");
        }

        return new Tool("dotnet", Which("dotnet"), "dotnet-sdk-10.0");
    }
}
