using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Vip.Benchmarks.Compare;

/// <summary>What the run ran on: CPU, cores, memory, kernel, runtime, and the versions of the peers.</summary>
internal static class MachineInfo
{
    public static async Task<string> MarkdownAsync(CompareContext context, CancellationToken cancellationToken)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- CPU: {Cpu()} — {Environment.ProcessorCount} logical cores, shared with other work (figures are medians of runs; ratios are taken inside each run)");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Memory: {MemoryGiB()}; open-file limit {OpenFiles()}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- OS: {Os()}, kernel {Read("/proc/sys/kernel/osrelease")}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- .NET: {RuntimeInformation.FrameworkDescription} (the VIP box runs as `dotnet vipd.dll vip`, Release build)");
        var versions = new List<string>();
        foreach (var (tool, args) in new (Tool, string[])[]
        {
            (context.Tools.Haproxy, ["-v"]),
            (context.Tools.Iperf3, ["--version"]),
            (context.Tools.RedisServer, ["--version"]),
            (context.Tools.Nginx, ["-v"]),
            (context.Tools.Socat, ["-V"]),
        })
        {
            versions.Add(tool.Installed ? await VersionAsync(tool, args, cancellationToken) : tool.Missing);
        }

        sb.AppendLine(CultureInfo.InvariantCulture, $"- Peers: {string.Join("; ", versions)}");
        sb.AppendLine("- Everything on 127.0.0.1: load generator, forwarder and backends share the same 2 cores.");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- Load average (1 min) from other work: {context.LoadAtStart} at the start of the run, {LoadAverage()} at the end");
        return sb.ToString();
    }

    private static async Task<string> VersionAsync(Tool tool, string[] args, CancellationToken cancellationToken)
    {
        try
        {
            var output = await ToolRun.RunAsync(tool.Path!, args, TimeSpan.FromSeconds(10), cancellationToken);
            var text = (output.StandardOutput + "\n" + output.StandardError).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Where(l => l.Length > 0).ToList();
            var line = text.FirstOrDefault(l => l.Contains("version", StringComparison.OrdinalIgnoreCase) || l.Contains(" v=", StringComparison.Ordinal))
                ?? text.FirstOrDefault() ?? "";
            return $"{tool.Name} {ExtractVersion(line)}";
        }
        catch (PeerFailedException)
        {
            return tool.Name + " (version unknown)";
        }
    }

    private static string ExtractVersion(string line)
    {
        // "HAProxy version 2.6.12-1+deb12u4 …", "iperf 3.12 (cJSON …)", "Redis server v=7.0.15 …", "nginx version: nginx/1.22.1", "socat version 1.7.4.4 on …"
        foreach (var token in line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var t = token.StartsWith("v=", StringComparison.Ordinal) ? token[2..] : token.Contains('/', StringComparison.Ordinal) ? token[(token.IndexOf('/', StringComparison.Ordinal) + 1)..] : token;
            if (t.Length > 0 && char.IsDigit(t[0]) && t.Contains('.', StringComparison.Ordinal))
            {
                return t;
            }
        }

        return line;
    }

    /// <summary>The 1-minute load average, the first field of /proc/loadavg.</summary>
    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "unknown";

    private static string Cpu() =>
        File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";

    private static string MemoryGiB()
    {
        var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
        if (line is null)
        {
            return "unknown";
        }

        var kib = long.Parse(line["MemTotal:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        return (kib / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture) + " GiB";
    }

    private static string OpenFiles() =>
        File.ReadLines("/proc/self/limits").FirstOrDefault(l => l.StartsWith("Max open files", StringComparison.Ordinal))?["Max open files".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1] ?? "unknown";

    private static string Os() =>
        File.Exists("/etc/os-release")
            ? File.ReadLines("/etc/os-release").FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))?["PRETTY_NAME=".Length..].Trim('"') ?? "Linux"
            : RuntimeInformation.OSDescription;

    private static string Read(string path) => File.Exists(path) ? File.ReadAllText(path).Trim() : "unknown";
}
