namespace Vip.Benchmarks.Compare;

/// <summary>The built <c>vipd</c> and the roles it has; the VIP box and the chain scenario need roles that may not exist yet.</summary>
internal sealed class VipdInfo
{
    private readonly HashSet<string> _roles;

    private VipdInfo(string? dllPath, string? dotnetPath, HashSet<string> roles, string? problem)
    {
        DllPath = dllPath;
        DotnetPath = dotnetPath;
        _roles = roles;
        Problem = problem;
    }

    public string? DllPath { get; }

    public string? DotnetPath { get; }

    /// <summary>Why vipd cannot run at all (not built, no dotnet), or null.</summary>
    public string? Problem { get; }

    public IReadOnlyCollection<string> Roles => _roles;

    public bool Has(params string[] roles) => Problem is null && roles.All(_roles.Contains);

    /// <summary>The cell text for a figure that needs <paramref name="roles"/> when some are absent.</summary>
    public string Missing(params string[] roles)
    {
        if (Problem is not null)
        {
            return "missing: " + Problem;
        }

        var absent = roles.Where(r => !_roles.Contains(r)).ToArray();
        return absent.Length == 0 ? "" : $"not available: role missing ({string.Join(", ", absent)})";
    }

    /// <summary>Starts <c>dotnet vipd.dll ROLE args</c> as a peer process. Logging is set to warnings so it costs what HAProxy's (off) costs.</summary>
    public ChildProcess Start(string name, string role, IEnumerable<string> args)
    {
        if (!Has(role))
        {
            throw new PeerFailedException(Missing(role));
        }

        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["VIPD_Logging__LogLevel__Default"] = "Warning",
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
        };
        return ChildProcess.Start(name, DotnetPath!, [DllPath!, role, .. args], environment);
    }

    /// <summary>Finds vipd.dll (the Release output of Vip.Daemons unless given) and asks it for its roles.</summary>
    public static async Task<VipdInfo> ProbeAsync(Toolbox tools, string repoRoot, string? explicitPath, CancellationToken cancellationToken)
    {
        var dll = explicitPath ?? Path.Combine(repoRoot, "Vip.Daemons", "bin", "Release", "net10.0", "vipd.dll");
        if (!File.Exists(dll))
        {
            return new VipdInfo(null, tools.Dotnet.Path, [], $"vipd not built ({dll}); run dotnet build -c Release Vip.slnx");
        }

        if (!tools.Dotnet.Installed)
        {
            return new VipdInfo(dll, null, [], "dotnet muxer not found (set DOTNET_ROOT)");
        }

        var output = await ToolRun.RunAsync(tools.Dotnet.Path!, [dll, "--help"], TimeSpan.FromSeconds(60), cancellationToken);
        var roles = new HashSet<string>(StringComparer.Ordinal);

        // `vipd --help` lists one role a line, indented by two spaces: "  vip      Summary".
        foreach (var line in output.StandardOutput.Split('\n'))
        {
            if (line.StartsWith("  ", StringComparison.Ordinal) && line.Length > 2 && line[2] != ' ')
            {
                roles.Add(line.Trim().Split(' ', 2)[0]);
            }
        }

        return output.ExitCode == 0
            ? new VipdInfo(dll, tools.Dotnet.Path, roles, null)
            : new VipdInfo(dll, tools.Dotnet.Path, [], $"vipd --help failed ({output.ExitCode}): {output.StandardError.Trim()}");
    }
}
