// Vip build script. Public targets: Build, Test, Pack, Bench, Demo, Default (= Test).
// Private steps are prefixed "__". Run with: dotnet tool restore && dotnet cake --target=Test
var target = Argument("target", "Default");
var configuration = Argument("configuration", "Release");
// --long=true also runs the long variants (chaos, crash-kill loops); see docs/reliability.md.
var runLong = Argument("long", false) || EnvironmentVariable("VIP_LONG") == "1";
var artifacts = Directory("./artifacts");
var solution = "./Vip.slnx";

Task("__Clean")
    .Does(() => CleanDirectory(artifacts));

Task("__Restore")
    .Does(() => DotNetRestore(solution));

Task("Build")
    .IsDependentOn("__Restore")
    .Does(() => DotNetBuild(solution, new DotNetBuildSettings
    {
        Configuration = configuration,
        NoRestore = true,
    }));

Task("Test")
    .IsDependentOn("Build")
    .Does(() =>
{
    var results = artifacts + Directory("test-results");
    CleanDirectory(results);
    DotNetTest("./Vip.Tests/Vip.Tests.csproj", new DotNetTestSettings
    {
        Configuration = configuration,
        NoBuild = true,
        NoRestore = true,
        Filter = runLong ? null : "TestCategory!=Long",
        Loggers = new[] { "trx;LogFileName=results.trx", "console;verbosity=normal" },
        ResultsDirectory = results,
        ArgumentCustomization = args => args.Append("--blame-hang-timeout 5m"),
    });
});

Task("Pack")
    .IsDependentOn("Build")
    .Does(() =>
{
    // Vip.Core only: .nupkg (README, LICENSE, XML docs) and .snupkg (portable PDB with SourceLink when the clone
    // has a hosted git remote; see Vip.Core/Directory.Build.targets). Vip.Tests/Packaging checks what it contains
    // and that a fresh project can restore, build and run against it.
    var packages = artifacts + Directory("packages");
    CleanDirectory(packages);
    DotNetPack("./Vip.Core/Vip.Core.csproj", new DotNetPackSettings
    {
        Configuration = configuration,
        NoBuild = true,
        NoRestore = true,
        OutputDirectory = packages,
    });
    foreach (var file in GetFiles(packages.Path.FullPath + "/*.*nupkg"))
    {
        Information("packed {0}", file.GetFilename());
    }
});

Task("Bench")
    .IsDependentOn("Build")
    .Does(() =>
{
    // Micro benchmarks (BenchmarkDotNet, short job), then the side-by-side comparison against HAProxy, nginx and
    // direct connections (docs/benchmarks.md). --quick=true shortens the comparison; --write-docs=true rewrites the
    // generated regions of docs/benchmarks.md; --only=bulk,rr,... picks comparison scenarios; --micro=false skips BDN.
    var settings = new DotNetRunSettings { Configuration = configuration, NoBuild = true, NoRestore = true };
    if (Argument("micro", true))
    {
        DotNetRun("./Vip.Benchmarks/Vip.Benchmarks.csproj",
            new ProcessArgumentBuilder().Append("--filter").Append("*").Append("--job").Append("short").Append("--join"), settings);
    }

    var compare = new ProcessArgumentBuilder().Append("compare")
        .Append("--vipd").AppendQuoted(MakeAbsolute(File($"./Vip.Daemons/bin/{configuration}/net10.0/vipd.dll")).FullPath);
    if (Argument("quick", false)) compare.Append("--quick");
    if (Argument("write-docs", false)) compare.Append("--write-docs");
    var only = Argument("only", "");
    if (only != "") compare.Append("--only").Append(only);
    DotNetRun("./Vip.Benchmarks/Vip.Benchmarks.csproj", compare, settings);
});

Task("Demo")
    .IsDependentOn("Build")
    .Does(() => DotNetRun("./Vip.Daemons/Vip.Daemons.csproj", new ProcessArgumentBuilder().Append("demo"),
        new DotNetRunSettings { Configuration = configuration, NoBuild = true, NoRestore = true }));

Task("Default")
    .IsDependentOn("Test");

RunTarget(target);
