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
}
