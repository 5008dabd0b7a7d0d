namespace Vip.Tests.Reliability.Harness;

/// <summary>Where the repository's files are, seen from the test assembly's folder.</summary>
internal static class RepoPaths
{
    private static readonly Lazy<string> RootLazy = new(() =>
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Vip.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("cannot find the repository root (no Vip.slnx above " + TestContext.CurrentContext.TestDirectory + ")");
    });

    /// <summary>The repository root (the folder holding Vip.slnx).</summary>
    public static string Root => RootLazy.Value;

    /// <summary>fuzz/corpus.</summary>
    public static string Corpus => Path.Combine(Root, "fuzz", "corpus");

    /// <summary>
    /// The built vipd.dll to run as <c>dotnet vipd.dll ROLE ...</c>: the copy next to the tests (Vip.Tests references
    /// Vip.Daemons), else the Vip.Daemons build output of the same configuration.
    /// </summary>
    public static string VipdDll
    {
        get
        {
            var here = Path.Combine(TestContext.CurrentContext.TestDirectory, "vipd.dll");
            if (File.Exists(here) && File.Exists(Path.Combine(TestContext.CurrentContext.TestDirectory, "vipd.runtimeconfig.json")))
            {
                return here;
            }

            var config = new DirectoryInfo(TestContext.CurrentContext.TestDirectory).Parent?.Name ?? "Debug";
            var built = Path.Combine(Root, "Vip.Daemons", "bin", config, "net10.0", "vipd.dll");
            return File.Exists(built) ? built : throw new FileNotFoundException("vipd.dll is not built (dotnet build Vip.slnx)", built);
        }
    }

    /// <summary>The dotnet host running these tests (used to start vipd processes).</summary>
    public static string DotnetHost => Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
}
