using System.IO.Compression;

namespace Vip.Tests.Packaging;

/// <summary>
/// SourceLink for real, whatever remote this clone has: a clone of the repository at HEAD is given a GitHub origin
/// and packed with <c>-p:VipRequireSourceLink=true</c> (a release build); its PDB must map the sources to
/// raw.githubusercontent.com at that commit and its nuspec must name the repository and commit. Long: it compiles
/// Vip.Core once more.
/// </summary>
[TestFixture]
[Category("Long")]
[Category("Pack")]
public sealed class SourceLinkTests
{
    private const string Owner = "vip-project";
    private const string Repository = "vip";

    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(10);

    private string _work = "";

    [OneTimeSetUp]
    public void CreateWorkFolder() => _work = Directory.CreateTempSubdirectory("vip-sourcelink-").FullName;

    [OneTimeTearDown]
    public void RemoveWorkFolder()
    {
        if (_work.Length > 0)
        {
            Directory.Delete(_work, recursive: true);
        }
    }

    [Test]
    public async Task Clone_with_a_GitHub_remote_packs_symbols_that_link_to_its_commit()
    {
        var (_, headOut, _) = await ProcessRunner.RunAsync("git", ["rev-parse", "HEAD"], TimeSpan.FromSeconds(30), RepoPaths.Root);
        var head = headOut.Trim();
        var clone = Path.Combine(_work, "clone");
        await Git(_work, "clone", "--quiet", "--no-checkout", RepoPaths.Root, clone);
        await Git(clone, "checkout", "--quiet", head);
        await Git(clone, "remote", "set-url", "origin", $"https://github.com/{Owner}/{Repository}.git");

        var feed = Path.Combine(_work, "feed");
        var version = $"0.0.0-sourcelink.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
        var (code, stdout, stderr) = await ProcessRunner.RunAsync("dotnet",
            ["pack", Path.Combine(clone, "Vip.Core", "Vip.Core.csproj"), "-c", "Release", "-o", feed,
             "-p:PackageVersion=" + version, "-p:VipRequireSourceLink=true", "-nologo"],
            StepTimeout, clone, new Dictionary<string, string?> { ["DOTNET_NOLOGO"] = "1", ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" });
        Assert.That(code, Is.Zero, stdout + stderr);

        using var zip = ZipFile.OpenRead(Path.Combine(feed, $"Vip.Core.{version}.nupkg"));
        using var symbols = ZipFile.OpenRead(Path.Combine(feed, $"Vip.Core.{version}.snupkg"));
        var pdb = PackageInspection.ReadPdb(PackageInspection.ReadEntry(symbols, "lib/net10.0/Vip.Core.pdb"));
        Assert.That(pdb.Id, Is.EqualTo(PackageInspection.CodeViewPdbId(PackageInspection.ReadEntry(zip, "lib/net10.0/Vip.Core.dll"))));
        SourceLinkCheck.AssertLinked(pdb, PackageInspection.ReadNuspec(zip), clone, head, $"https://raw.githubusercontent.com/{Owner}/{Repository}");
    }

    private static async Task Git(string directory, params string[] args)
    {
        var (code, stdout, stderr) = await ProcessRunner.RunAsync("git", args, TimeSpan.FromMinutes(2), directory);
        Assert.That(code, Is.Zero, $"git {string.Join(' ', args)}: {stdout}{stderr}");
    }
}
