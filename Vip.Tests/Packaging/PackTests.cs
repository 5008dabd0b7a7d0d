using System.IO.Compression;
using System.Xml.Linq;

namespace Vip.Tests.Packaging;

/// <summary>
/// The Vip.Core NuGet package works for a stranger: packed with README, license, XML docs and symbols, then
/// referenced from a local folder source by a fresh console project that builds and runs against it.
/// </summary>
[TestFixture]
[Category("Pack")]
public sealed class PackTests
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(5);

    private string _work = "";
    private string _feed = "";
    private string _version = "";

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
    public void Package_carries_readme_license_xml_docs_and_a_symbol_package()
    {
        var nupkg = Path.Combine(_feed, $"Vip.Core.{_version}.nupkg");
        var snupkg = Path.Combine(_feed, $"Vip.Core.{_version}.snupkg");
        Assert.That(File.Exists(snupkg), Is.True, "symbol package");
        using var zip = ZipFile.OpenRead(nupkg);
        var names = zip.Entries.Select(e => e.FullName).ToList();
        Assert.That(names, Is.SupersetOf(new[] { "README.md", "LICENSE", "lib/net10.0/Vip.Core.dll", "lib/net10.0/Vip.Core.xml" }));

        using var nuspecStream = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
        var nuspec = XDocument.Load(nuspecStream);
        string? Meta(string name) => nuspec.Descendants().FirstOrDefault(e => e.Name.LocalName == name)?.Value;
        Assert.Multiple(() =>
        {
            Assert.That(Meta("readme"), Is.EqualTo("README.md"));
            Assert.That(Meta("license"), Is.EqualTo("MIT"));
            Assert.That(Meta("description"), Is.Not.Empty);
        });

        using var symbols = ZipFile.OpenRead(snupkg);
        Assert.That(symbols.Entries.Select(e => e.FullName), Does.Contain("lib/net10.0/Vip.Core.pdb"));
    }

    [Test]
    public async Task Fresh_console_project_builds_and_runs_against_the_package_from_a_folder_source()
    {
        var app = Path.Combine(_work, "consumer");
        Directory.CreateDirectory(app);
        // Outside the repository: no Directory.Build.props or central package management of ours applies.
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
        await File.WriteAllTextAsync(Path.Combine(app, "Program.cs"), ConsumerProgram);

        var env = new Dictionary<string, string?> { ["DOTNET_NOLOGO"] = "1", ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" };
        var (buildCode, buildOut, buildErr) = await ProcessRunner.RunAsync("dotnet", ["build", "-c", "Release", "-nologo"], StepTimeout, app, env);
        Assert.That(buildCode, Is.Zero, buildOut + buildErr);

        var dll = Path.Combine(app, "bin", "Release", "net10.0", "Consumer.dll");
        var (runCode, runOut, runErr) = await ProcessRunner.RunAsync("dotnet", [dll], TimeSpan.FromMinutes(1), app, env);
        Assert.Multiple(() =>
        {
            Assert.That(runCode, Is.Zero, runOut + runErr);
            Assert.That(runOut, Does.Contain("redirected to app-7 at 127.0.0.1:9107"));
        });
    }

    // TODO(lead): once Vip.Core exposes the tier-2 dispatcher (and the app-server agent can be hosted next to it),
    // replace the stub below with an in-process system — tier-1 + tier-2 + a sample app server on loopback — and
    // have the program submit a task through it and run it (VipClient.RunAsync), as issue 6 asks. Until then the
    // consumer uses the package's real client (VipClient.SubmitAsync) and codec against a stub distributor that
    // answers every TASK with a REDIRECT, which proves the package restores, compiles and works end to end.
    private const string ConsumerProgram = """
        using System.Buffers;
        using System.IO.Pipelines;
        using System.Net;
        using System.Net.Sockets;
        using Vip.Client;
        using Vip.Protocol;

        // A stub distributor on loopback: reads TASK frames with the package's FrameReader, answers REDIRECT.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var stub = Task.Run(async () =>
        {
            using var socket = await listener.AcceptSocketAsync();
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            var input = PipeReader.Create(stream);
            var frames = new FrameReader();
            while (true)
            {
                var read = await input.ReadAsync();
                var buffer = read.Buffer;
                var consumed = buffer.Start;
                var examined = buffer.End;
                if (frames.TryParse(buffer, ref consumed, ref examined, out var frame))
                {
                    var task = TaskRequest.Read(frame.Payload.ToArray());
                    if (task.Kind != "sha256" || task.ClientId != "client-1") throw new InvalidOperationException("stub got " + task);
                    var output = new ArrayBufferWriter<byte>();
                    var expires = DateTimeOffset.UtcNow.AddSeconds(30).ToUnixTimeMilliseconds();
                    FrameWriter.Write(output, frame.RequestId,
                        new Redirect("app-7", WireEndpoint.From(IPAddress.Loopback, 9107), expires, new byte[] { 1, 2, 3 }, []));
                    await stream.WriteAsync(output.WrittenMemory);
                    input.AdvanceTo(consumed, examined);
                    return;
                }

                input.AdvanceTo(consumed, examined);
                if (read.IsCompleted) throw new InvalidOperationException("client closed before a whole frame");
            }
        });

        await using var client = new VipClient(new VipClientOptions { Vip = listener.LocalEndpoint });
        var assignment = await client.SubmitAsync(new TaskRequest("client-1", "sha256", [new("region", "eu")], "", "hello"u8.ToArray()));
        await stub;
        Console.WriteLine($"redirected to {assignment.ServerId} at {assignment.Server}");
        return assignment.ServerId == "app-7" && assignment.Ticket.Length == 3 ? 0 : 1;
        """;
}
