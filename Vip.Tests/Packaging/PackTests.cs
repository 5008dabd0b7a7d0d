using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Xml.Linq;

namespace Vip.Tests.Packaging;

/// <summary>
/// The Vip.Core NuGet package works for a stranger: packed with README, license, XML docs, symbols and (when the
/// clone has a hosted remote) SourceLink, then referenced from a local folder source by a fresh console project
/// that builds and runs a whole system on loopback through the package's public API.
/// </summary>
[TestFixture]
[Category("Pack")]
public sealed class PackTests
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(5);

    private string _work = "";
    private string _feed = "";
    private string _version = "";

    private string NupkgPath => Path.Combine(_feed, $"Vip.Core.{_version}.nupkg");

    private string SnupkgPath => Path.Combine(_feed, $"Vip.Core.{_version}.snupkg");

    [OneTimeSetUp]
    public async Task PackIntoATempFolder()
    {
        _work = Directory.CreateTempSubdirectory("vip-pack-").FullName;
        _feed = Path.Combine(_work, "feed");
        // A version of our own, so the consumer cannot pick up a Vip.Core cached from an earlier run.
        _version = $"0.0.0-packcheck.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";

        // Pack what the tests were built from (same configuration, no rebuild): as `dotnet cake --target=Pack` does.
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name; // bin/<Configuration>/net10.0
        var (code, stdout, stderr) = await ProcessRunner.RunAsync("dotnet",
            ["pack", Path.Combine(RepoPaths.Root, "Vip.Core", "Vip.Core.csproj"), "-c", configuration, "--no-build", "--no-restore",
             "-o", _feed, "-p:PackageVersion=" + _version, "-nologo"],
            StepTimeout);
        Assert.That(code, Is.Zero, stdout + stderr);
    }

    [OneTimeTearDown]
    public void CleanUp()
    {
        if (_work.Length > 0)
        {
            Directory.Delete(_work, recursive: true);
        }

        // The consumer's restore put our one-off version into the global packages folder: take it out again.
        var global = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var cached = Path.Combine(global, "vip.core", _version);
        if (_version.Length > 0 && Directory.Exists(cached))
        {
            Directory.Delete(cached, recursive: true);
        }
    }

    [Test]
    public void Package_carries_the_repository_readme_and_the_MIT_license()
    {
        using var zip = ZipFile.OpenRead(NupkgPath);
        var nuspec = PackageInspection.ReadNuspec(zip);
        var license = Element(nuspec, "license");
        Assert.Multiple(() =>
        {
            Assert.That(Element(nuspec, "readme")?.Value, Is.EqualTo("README.md"));
            Assert.That(PackageInspection.ReadEntry(zip, "README.md"), Is.EqualTo(File.ReadAllBytes(Path.Combine(RepoPaths.Root, "README.md"))), "README.md is the repository's");
            Assert.That(license?.Attribute("type")?.Value, Is.EqualTo("expression"));
            Assert.That(license?.Value, Is.EqualTo("MIT"));
            Assert.That(PackageInspection.ReadEntry(zip, "LICENSE"), Is.EqualTo(File.ReadAllBytes(Path.Combine(RepoPaths.Root, "LICENSE"))), "LICENSE is the repository's");
            Assert.That(Element(nuspec, "description")?.Value, Is.Not.Empty);
            Assert.That(Element(nuspec, "id")?.Value, Is.EqualTo("Vip.Core"));
        });
    }

    [Test]
    public void Package_xml_documentation_covers_every_public_type()
    {
        using var zip = ZipFile.OpenRead(NupkgPath);
        var xml = XDocument.Load(new MemoryStream(PackageInspection.ReadEntry(zip, "lib/net10.0/Vip.Core.xml")));
        var summaries = xml.Descendants("member")
            .Where(m => !string.IsNullOrWhiteSpace(m.Element("summary")?.Value))
            .Select(m => m.Attribute("name")!.Value)
            .ToHashSet(StringComparer.Ordinal);
        var publicTypes = PackageInspection.PublicTypeDocIds(PackageInspection.ReadEntry(zip, "lib/net10.0/Vip.Core.dll"));
        Assert.Multiple(() =>
        {
            Assert.That(xml.Root?.Element("assembly")?.Element("name")?.Value, Is.EqualTo("Vip.Core"));
            Assert.That(publicTypes, Has.Count.GreaterThan(50), "the public surface was read from the packed assembly");
            Assert.That(publicTypes.Where(t => !summaries.Contains(t)), Is.Empty, "public types without a <summary> in Vip.Core.xml");
            Assert.That(summaries.Count(s => s.StartsWith("M:", StringComparison.Ordinal)), Is.GreaterThan(publicTypes.Count), "members are documented too");
        });
    }

    [Test]
    public void Package_depends_on_its_runtime_packages_and_not_on_build_tools()
    {
        using var zip = ZipFile.OpenRead(NupkgPath);
        var dependencies = PackageInspection.ReadNuspec(zip).Descendants()
            .Where(e => e.Name.LocalName == "group" && e.Attribute("targetFramework")?.Value == "net10.0")
            .SelectMany(g => g.Elements().Where(e => e.Name.LocalName == "dependency"))
            .Select(d => d.Attribute("id")!.Value)
            .ToList();
        Assert.That(dependencies, Is.SupersetOf(new[] { "LiteDB", "Microsoft.Extensions.Options", "Microsoft.Extensions.Logging.Abstractions", "Microsoft.Extensions.Hosting.Abstractions" }));
        Assert.That(dependencies, Has.None.StartsWith("Microsoft.SourceLink"), "SourceLink is a build-time tool (PrivateAssets)");
    }

    [Test]
    public void Symbol_package_holds_the_pdb_of_the_packed_assembly()
    {
        Assert.That(File.Exists(SnupkgPath), Is.True, "symbol package next to the package");
        using var zip = ZipFile.OpenRead(NupkgPath);
        using var symbols = ZipFile.OpenRead(SnupkgPath);
        var dll = PackageInspection.ReadEntry(zip, "lib/net10.0/Vip.Core.dll");
        var pdb = PackageInspection.ReadPdb(PackageInspection.ReadEntry(symbols, "lib/net10.0/Vip.Core.pdb"));
        Assert.Multiple(() =>
        {
            Assert.That(pdb.Id, Is.EqualTo(PackageInspection.CodeViewPdbId(dll)), "the PDB is the one the packed assembly points at");
            Assert.That(pdb.Documents, Is.GreaterThan(50), "the PDB lists the library's source files");
            Assert.That(PackageInspection.HasEmbeddedPdb(dll), Is.False, "symbols ship in the .snupkg, not inside the assembly");
            Assert.That(zip.Entries.Select(e => e.FullName), Has.None.EndsWith(".pdb"), "no PDB in the main package");
        });
    }

    [Test]
    public async Task Symbols_let_a_debugger_find_every_source_file()
    {
        using var zip = ZipFile.OpenRead(NupkgPath);
        using var symbols = ZipFile.OpenRead(SnupkgPath);
        var pdb = PackageInspection.ReadPdb(PackageInspection.ReadEntry(symbols, "lib/net10.0/Vip.Core.pdb"));
        var (_, remote, _) = await ProcessRunner.RunAsync("git", ["config", "--get", "remote.origin.url"], TimeSpan.FromSeconds(30), RepoPaths.Root);
        remote = remote.Trim();
        if (SourceLinkCheck.IsHosted(remote))
        {
            var (_, head, _) = await ProcessRunner.RunAsync("git", ["rev-parse", "HEAD"], TimeSpan.FromSeconds(30), RepoPaths.Root);
            SourceLinkCheck.AssertLinked(pdb, PackageInspection.ReadNuspec(zip), RepoPaths.Root, head.Trim(), rawUrlPrefix: null);
        }
        else
        {
            // No hosted remote (origin: empty or a local path): nothing to link to, so Vip.Core/Directory.Build.targets
            // embeds every source in the PDB instead. SourceLinkTests (Long) checks SourceLink itself on a clone of
            // this repository given a GitHub remote.
            Assert.Multiple(() =>
            {
                Assert.That(pdb.SourceLinkJson, Is.Null, $"no SourceLink map without a hosted remote (origin: '{remote}')");
                Assert.That(pdb.EmbeddedDocuments, Is.EqualTo(pdb.Documents), "every source file is embedded in the PDB");
            });
        }
    }

    [Test]
    public async Task Fresh_console_project_runs_a_task_through_an_in_process_system_built_from_the_package()
    {
        var app = Path.Combine(_work, "consumer");
        Directory.CreateDirectory(app);
        // Outside the repository: no Directory.Build.props or central package management of ours applies. Vip.Core
        // comes from the folder we packed into; its dependencies from the configured NuGet source.
        await File.WriteAllTextAsync(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{_feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />
              </packageSources>
              <packageSourceMapping>
                <packageSource key="local"><package pattern="Vip.Core" /></packageSource>
                <packageSource key="nuget.org"><package pattern="*" /></packageSource>
              </packageSourceMapping>
            </configuration>
            """);
        await File.WriteAllTextAsync(Path.Combine(app, "Consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
                <NuGetAudit>false</NuGetAudit>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Vip.Core" Version="{_version}" />
              </ItemGroup>
            </Project>
            """);
        File.Copy(Path.Combine(RepoPaths.Root, "Vip.Tests", "Packaging", "Consumer", "Program.cs.txt"), Path.Combine(app, "Program.cs"));

        var env = new Dictionary<string, string?> { ["DOTNET_NOLOGO"] = "1", ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" };
        var (buildCode, buildOut, buildErr) = await ProcessRunner.RunAsync("dotnet", ["build", "-c", "Release", "-nologo"], StepTimeout, app, env);
        Assert.That(buildCode, Is.Zero, buildOut + buildErr);
        var assets = await File.ReadAllTextAsync(Path.Combine(app, "obj", "project.assets.json"));
        Assert.That(assets, Does.Contain($"\"Vip.Core/{_version}\""), "the consumer restored the package we packed");

        // A body of our own making, so the printed hash cannot be a constant of the program's.
        var body = $"package check {Guid.NewGuid():N}";
        var expected = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(body)));
        var dll = Path.Combine(app, "bin", "Release", "net10.0", "Consumer.dll");
        var started = System.Diagnostics.Stopwatch.StartNew();
        var (runCode, runOut, runErr) = await ProcessRunner.RunAsync("dotnet", [dll, body], TimeSpan.FromMinutes(1), app, env);
        await TestContext.Out.WriteLineAsync($"consumer ran {started.Elapsed.TotalSeconds:0.0} s, exit {runCode}:\n{runOut}{runErr}");
        Assert.Multiple(() =>
        {
            Assert.That(runCode, Is.Zero, runOut + runErr);
            Assert.That(runOut, Does.Contain("server: consumer-app at 127.0.0.1:"));
            Assert.That(runOut, Does.Contain("result: " + expected));
            Assert.That(runOut, Does.Contain("stopped"));
        });
    }

    private static XElement? Element(XDocument nuspec, string name) => nuspec.Descendants().FirstOrDefault(e => e.Name.LocalName == name);
}

/// <summary>What "SourceLink works" means for a packed PDB and nuspec.</summary>
internal static class SourceLinkCheck
{
    public static bool IsHosted(string remote)
        => remote.StartsWith("https://", StringComparison.Ordinal) || remote.StartsWith("http://", StringComparison.Ordinal)
            || remote.StartsWith("git@", StringComparison.Ordinal) || remote.StartsWith("ssh://", StringComparison.Ordinal);

    /// <summary>
    /// The PDB maps the repository root to URLs of <paramref name="commit"/> (under <paramref name="rawUrlPrefix"/>
    /// when given), sources not in git (generated ones) are embedded, and the nuspec names the repository and commit.
    /// </summary>
    public static void AssertLinked(PdbContents pdb, XDocument nuspec, string repositoryRoot, string commit, string? rawUrlPrefix)
    {
        Assert.That(pdb.SourceLinkJson, Is.Not.Null, "the PDB has a SourceLink map");
        using var json = JsonDocument.Parse(pdb.SourceLinkJson!);
        var documents = json.RootElement.GetProperty("documents").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
        // The local root, or "/_/" when the build maps paths (ContinuousIntegrationBuild=true).
        var root = new[] { Path.TrimEndingDirectorySeparator(Path.GetFullPath(repositoryRoot)) + Path.DirectorySeparatorChar + "*", "/_/*" }
            .FirstOrDefault(documents.ContainsKey) ?? repositoryRoot;
        var repository = nuspec.Descendants().FirstOrDefault(e => e.Name.LocalName == "repository");
        Assert.Multiple(() =>
        {
            Assert.That(documents.Keys, Does.Contain(root), "the repository root is mapped");
            if (documents.TryGetValue(root, out var url))
            {
                Assert.That(url, Does.StartWith("https://").And.Contain(commit).And.EndWith("/*"));
                if (rawUrlPrefix is not null)
                {
                    Assert.That(url, Is.EqualTo($"{rawUrlPrefix}/{commit}/*"));
                }
            }

            Assert.That(pdb.EmbeddedDocuments, Is.Positive, "generated sources (not in git) are embedded");
            Assert.That(repository?.Attribute("type")?.Value, Is.EqualTo("git"));
            Assert.That(repository?.Attribute("url")?.Value, Does.StartWith("https://"));
            Assert.That(repository?.Attribute("commit")?.Value, Is.EqualTo(commit));
        });
    }
}
