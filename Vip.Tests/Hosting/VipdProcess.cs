using System.Diagnostics;
using System.Text;

namespace Vip.Tests.Hosting;

/// <summary>
/// Runs the real <c>vipd</c> (the vipd.dll built next to the test assembly, since Vip.Tests references
/// Vip.Daemons) as a child process, captures its output, and kills it by pid if a test leaves it running.
/// </summary>
internal sealed class VipdProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();

    private VipdProcess(Process process)
    {
        _process = process;
    }

    /// <summary>Path of vipd.dll next to the test assembly.</summary>
    public static string DllPath
    {
        get
        {
            var path = Path.Combine(AppContext.BaseDirectory, "vipd.dll");
            return File.Exists(path) ? path : throw new FileNotFoundException("vipd.dll is not next to the test assembly; build Vip.Tests (it references Vip.Daemons)", path);
        }
    }

    public int Id => _process.Id;

    public string StandardError { get { lock (_stderr) { return _stderr.ToString(); } } }

    public string StandardOutput { get { lock (_stdout) { return _stdout.ToString(); } } }

    /// <summary>Starts <c>dotnet vipd.dll ARGS</c>.</summary>
    public static VipdProcess Start(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var psi = new ProcessStartInfo("dotnet") { ArgumentList = { DllPath } };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        return Start(psi, environment);
    }

    /// <summary>
    /// Starts vipd through <c>sh -c 'export SYSTEMD_EXEC_PID=$$; exec dotnet vipd.dll ...'</c>, so that the
    /// process systemd detection looks at carries its own pid in SYSTEMD_EXEC_PID, as under systemd.
    /// </summary>
    public static VipdProcess StartAsSystemdService(IEnumerable<string> args, IReadOnlyDictionary<string, string?> environment)
    {
        var psi = new ProcessStartInfo("sh");
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("export SYSTEMD_EXEC_PID=$$; exec dotnet \"$@\"");
        psi.ArgumentList.Add("sh"); // $0
        psi.ArgumentList.Add(DllPath);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        return Start(psi, environment);
    }

    private static VipdProcess Start(ProcessStartInfo psi, IReadOnlyDictionary<string, string?>? environment)
    {
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.RedirectStandardInput = true;
        psi.UseShellExecute = false;
        // A clean slate: none of the runner's systemd variables, no stray vipd configuration.
        foreach (var name in new[] { "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "SYSTEMD_EXEC_PID", "LISTEN_PID", "VIPD_CONFIG" })
        {
            psi.Environment.Remove(name);
        }

        psi.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (k, v) in environment ?? new Dictionary<string, string?>())
        {
            psi.Environment[k] = v;
        }

        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var result = new VipdProcess(process);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (result._stdout) { result._stdout.AppendLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (result._stderr) { result._stderr.AppendLine(e.Data); } } };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return result;
    }

    /// <summary>Runs vipd to completion (bounded by <paramref name="timeout"/>) and returns exit code and output.</summary>
    public static async Task<(int ExitCode, string StdOut, string StdErr)> RunAsync(IEnumerable<string> args, TimeSpan timeout, IReadOnlyDictionary<string, string?>? environment = null)
    {
        using var p = Start(args, environment);
        var code = await p.WaitForExitAsync(timeout);
        return (code, p.StandardOutput, p.StandardError);
    }

    /// <summary>Waits for the exit (and the end of its output); fails the test if it takes longer than <paramref name="timeout"/>.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"vipd (pid {Id}) did not exit within {timeout}; stderr so far:\n{StandardError}");
        }

        _process.WaitForExit(); // drains the asynchronous output readers
        return _process.ExitCode;
    }

    /// <summary>Sends SIGTERM, as systemd does on stop.</summary>
    public void Terminate() => Signal(Id, "TERM");

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // never started or already reaped
        }

        _process.Dispose();
    }

    private static void Signal(int pid, string signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-" + signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]) { UseShellExecute = false })!;
        kill.WaitForExit();
        Assert.That(kill.ExitCode, Is.Zero, $"kill -{signal} {pid}");
    }
}
