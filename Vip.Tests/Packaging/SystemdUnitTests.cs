using System.Globalization;
using System.Text.RegularExpressions;

namespace Vip.Tests.Packaging;

/// <summary>
/// The unit files in deploy/systemd: valid for systemd (systemd-analyze verify against a staged root where
/// /usr/lib/vipd/vipd exists) and hardened (systemd-analyze security --offline under a threshold).
/// </summary>
[TestFixture]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed partial class SystemdUnitTests
{
    /// <summary>The highest exposure accepted (0 = locked down, 10 = unprotected; systemd calls ≤ 2.9 "OK").</summary>
    private const double ExposureThreshold = 2.5;

    private static readonly string[] ExpectedUnits = ["vipd-vip.service", "vipd-tier1@.service", "vipd-tier2@.service", "vipd-app@.service"];

    private string _root = "";
    private string _systemdAnalyze = "";

    private static string UnitDirectory => Path.Combine(RepoPaths.Root, "deploy", "systemd");

    [OneTimeSetUp]
    public void StageRoot()
    {
        _systemdAnalyze = ProcessRunner.Which("systemd-analyze")
            ?? throw new AssertionException("systemd-analyze is not installed: install the Debian package 'systemd' (.ci/run does this when it is missing)");

        // A root with the vipd binary where ExecStart expects it, the distribution's own units (sysinit.target and
        // friends, which every service depends on), and ours.
        _root = Directory.CreateTempSubdirectory("vip-units-").FullName;
        var bin = Path.Combine(_root, "usr", "lib", "vipd", "vipd");
        Directory.CreateDirectory(Path.GetDirectoryName(bin)!);
        File.WriteAllText(bin, "#!/bin/sh\nexit 0\n");
        File.SetUnixFileMode(bin, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var systemUnits = new[] { "/usr/lib/systemd/system", "/lib/systemd/system" }.First(Directory.Exists);
        CopyDirectory(systemUnits, Path.Combine(_root, "usr", "lib", "systemd", "system"));
        var etc = Path.Combine(_root, "etc", "systemd", "system");
        Directory.CreateDirectory(etc);
        foreach (var unit in Directory.GetFiles(UnitDirectory, "*.service"))
        {
            File.Copy(unit, Path.Combine(etc, Path.GetFileName(unit)));
        }
    }

    [OneTimeTearDown]
    public void RemoveRoot()
    {
        if (_root.Length > 0)
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Test]
    public void Every_role_that_runs_as_a_service_has_a_unit()
        => Assert.That(Directory.GetFiles(UnitDirectory, "*.service").Select(Path.GetFileName), Is.EquivalentTo(ExpectedUnits));

    [TestCaseSource(nameof(ExpectedUnits))]
    public async Task Unit_passes_systemd_analyze_verify_without_a_single_warning(string unit)
    {
        var (code, stdout, stderr) = await ProcessRunner.RunAsync(_systemdAnalyze, ["verify", "--root=" + _root, StagedPath(unit)], TimeSpan.FromSeconds(60));
        Assert.Multiple(() =>
        {
            Assert.That(code, Is.Zero, stderr);
            Assert.That(stdout + stderr, Is.Empty, "systemd-analyze verify printed something (an unknown key is only a warning)");
        });
    }

    [Test]
    public async Task Verify_does_catch_an_ExecStart_that_does_not_exist()
    {
        // The control for the test above: the staged root must be what makes verify pass.
        var empty = Directory.CreateTempSubdirectory("vip-units-empty-").FullName;
        try
        {
            CopyDirectory(Path.Combine(_root, "usr", "lib", "systemd"), Path.Combine(empty, "usr", "lib", "systemd"));
            var etc = Path.Combine(empty, "etc", "systemd", "system");
            Directory.CreateDirectory(etc);
            File.Copy(Path.Combine(UnitDirectory, "vipd-vip.service"), Path.Combine(etc, "vipd-vip.service"));
            var (code, _, stderr) = await ProcessRunner.RunAsync(_systemdAnalyze, ["verify", "--root=" + empty, Path.Combine(etc, "vipd-vip.service")], TimeSpan.FromSeconds(60));
            Assert.Multiple(() =>
            {
                Assert.That(code, Is.Not.Zero);
                Assert.That(stderr, Does.Contain("/usr/lib/vipd/vipd"));
            });
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }

    [TestCaseSource(nameof(ExpectedUnits))]
    public async Task Unit_exposure_is_under_the_threshold(string unit)
    {
        var (code, stdout, stderr) = await ProcessRunner.RunAsync(_systemdAnalyze, ["security", "--offline=true", "--root=" + _root, "--no-pager", StagedPath(unit)], TimeSpan.FromSeconds(60));
        var match = OverallExposure().Match(stdout);
        Assert.That(match.Success, Is.True, $"no overall exposure line (exit {code}):\n{stdout}\n{stderr}");
        var exposure = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        TestContext.Out.WriteLine($"{unit}: exposure {exposure:0.0}");
        Assert.That(exposure, Is.LessThanOrEqualTo(ExposureThreshold), stdout);
    }

    [TestCaseSource(nameof(ExpectedUnits))]
    public void Unit_is_a_notify_service_with_a_watchdog_and_keeps_the_JIT_working(string unit)
    {
        var lines = File.ReadAllLines(Path.Combine(UnitDirectory, unit)).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        Assert.Multiple(() =>
        {
            foreach (var required in new[] { "Type=notify", "DynamicUser=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateDevices=yes", "NoNewPrivileges=yes", "Restart=on-failure" })
            {
                Assert.That(lines, Does.Contain(required), unit);
            }

            Assert.That(lines.Any(l => l.StartsWith("WatchdogSec=", StringComparison.Ordinal)), Is.True, "WatchdogSec");
            Assert.That(lines.Any(l => l.StartsWith("LimitNOFILE=", StringComparison.Ordinal)), Is.True, "LimitNOFILE");
            Assert.That(lines.Any(l => l.StartsWith("RestrictAddressFamilies=", StringComparison.Ordinal)), Is.True, "RestrictAddressFamilies");
            Assert.That(lines.Any(l => l.StartsWith("ExecStart=/usr/lib/vipd/vipd ", StringComparison.Ordinal)), Is.True, "ExecStart");
            Assert.That(lines.Any(l => l.StartsWith("MemoryDenyWriteExecute=", StringComparison.Ordinal)), Is.False, "the JIT needs W+X memory");
        });
    }

    private string StagedPath(string unit) => Path.Combine(_root, "etc", "systemd", "system", unit);

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var entry in new DirectoryInfo(from).EnumerateFileSystemInfos())
        {
            var target = Path.Combine(to, entry.Name);
            if (entry.LinkTarget is { } link)
            {
                File.CreateSymbolicLink(target, link); // unit aliases are symlinks; keep them as such
            }
            else if (entry is DirectoryInfo)
            {
                CopyDirectory(entry.FullName, target);
            }
            else
            {
                File.Copy(entry.FullName, target);
            }
        }
    }

    [GeneratedRegex(@"Overall exposure level for \S+: (\d+(?:\.\d+)?)")]
    private static partial Regex OverallExposure();
}
