using System.Globalization;

namespace Vip.Benchmarks.Compare;

/// <summary>What every scenario needs: options, the tools found, the built vipd, a temporary directory, progress output.</summary>
internal sealed class CompareContext : IDisposable
{
    private readonly DateTime _started = DateTime.UtcNow;

    private CompareContext(CompareOptions options, Toolbox tools, VipdInfo vipd, string repoRoot, string tempDirectory, TextWriter output)
    {
        Options = options;
        Tools = tools;
        Vipd = vipd;
        RepoRoot = repoRoot;
        TempDirectory = tempDirectory;
        Output = output;
    }

    public CompareOptions Options { get; }

    public Toolbox Tools { get; }

    public VipdInfo Vipd { get; }

    public string RepoRoot { get; }

    /// <summary>Config files, redis dirs, nginx prefixes; deleted at the end of the run.</summary>
    public string TempDirectory { get; }

    public TextWriter Output { get; }

    public int Runs => Options.Runs;

    /// <summary>The 1-minute load average when the run started (/proc/loadavg): how busy the shared machine was.</summary>
    public string LoadAtStart { get; } = MachineInfo.LoadAverage();

    public bool Quick => Options.Quick;

    public static async Task<CompareContext> CreateAsync(CompareOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var root = FindRepoRoot();
        var tools = Toolbox.Discover();
        var vipd = await VipdInfo.ProbeAsync(tools, root, options.VipdPath, cancellationToken);
        var temp = Directory.CreateTempSubdirectory("vip-compare-").FullName;
        return new CompareContext(options, tools, vipd, root, temp, output);
    }

    public PeerScope NewScope() => new(this);

    /// <summary>One progress line, prefixed with the seconds since the start.</summary>
    public void Log(string line)
    {
        var seconds = (DateTime.UtcNow - _started).TotalSeconds.ToString("0", CultureInfo.InvariantCulture);
        Output.WriteLine($"[{seconds,4}s] {line}");
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(TempDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A peer may still be writing its log as it exits; the directory is under /tmp.
        }
    }

    /// <summary>The directory holding Vip.slnx, searched upwards from the binary, then from the working directory.</summary>
    private static string FindRepoRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Vip.slnx")))
                {
                    return dir.FullName;
                }
            }
        }

        return Directory.GetCurrentDirectory();
    }
}
