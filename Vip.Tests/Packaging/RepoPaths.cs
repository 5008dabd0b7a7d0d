namespace Vip.Tests.Packaging;

/// <summary>Locates the repository the tests were built from (the folder holding Vip.slnx).</summary>
internal static class RepoPaths
{
    public static string Root
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Vip.slnx")))
                {
                    return dir.FullName;
                }
            }

            throw new DirectoryNotFoundException("no Vip.slnx above " + AppContext.BaseDirectory);
        }
    }
}
