using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Vip.Tests.Hosting;

/// <summary>
/// The real <c>vipd</c> run as a child process (<c>dotnet vipd.dll ROLE ...</c>, the vipd.dll built next to the test
/// assembly since Vip.Tests references Vip.Daemons), optionally inside a network namespace. Two ways to use it:
/// <list type="bullet">
/// <item>one-shot: <see cref="Start(IEnumerable{string}, IReadOnlyDictionary{string, string?}?)"/>,
/// <see cref="StartAsSystemdService"/>, <see cref="RunAsync"/>, <see cref="RunToEnd"/> — the arguments include the role;</item>
/// <item>a named daemon that can be killed and started again (chaos, clusters): the constructor, then
/// <see cref="Start()"/>, <see cref="Kill"/> (SIGKILL to this pid only), <see cref="Start()"/> again.</item>
/// </list>
/// Output is captured (stdout and stderr in full up to a cap, and the last lines with their arrival times, for
/// failure messages and for measuring reaction times). Every pid is registered and killed by pid, never by name,
/// if the test leaves it running.
/// </summary>
internal sealed class VipdProcess : IDisposable
{
    private const int KeptLines = 400;
    private const int TimedLines = 20_000;
    private const int MaxCapturedChars = 4 * 1024 * 1024;

    // Variables of the runner that would change how vipd behaves (systemd detection, configuration file).
    private static readonly string[] CleanedVariables = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "SYSTEMD_EXEC_PID", "LISTEN_PID", "VIPD_CONFIG"];

    private readonly string[] _args;
    private readonly string? _netns;
    private readonly IReadOnlyDictionary<string, string?> _environment;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly ConcurrentQueue<(long At, string Line)> _timed = new();
    private Process? _process;

    /// <summary>A named daemon, not started yet: <paramref name="args"/> exclude the role.</summary>
    public VipdProcess(string name, string role, IEnumerable<string> args, string? netns = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        Name = name;
        Role = role;
        _args = [.. args];
        _netns = netns;
        var env = new Dictionary<string, string?>
        {
            // Daemons in a cluster: one small heap each and no PGO rejits, so eight of them fit a 2-core machine.
            ["DOTNET_ENVIRONMENT"] = "Test",
            ["DOTNET_gcServer"] = "0",
            ["DOTNET_TieredPGO"] = "0",
        };
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            env[k] = v;
        }

        _environment = env;
    }

    private VipdProcess(string[] args, IReadOnlyDictionary<string, string?>? environment)
    {
        Name = "vipd";
        Role = args.Length > 0 ? args[0] : "";
        _args = args.Length > 0 ? args[1..] : [];
        _environment = environment ?? new Dictionary<string, string?>();
    }

    /// <summary>Path of vipd.dll: next to the test assembly, else the Vip.Daemons build output of the same configuration.</summary>
    public static string DllPath
    {
        get
        {
            var here = Path.Combine(AppContext.BaseDirectory, "vipd.dll");
            if (File.Exists(here) && File.Exists(Path.Combine(AppContext.BaseDirectory, "vipd.runtimeconfig.json")))
            {
                return here;
            }

            var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent?.Name ?? "Debug";
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                var built = Path.Combine(dir.FullName, "Vip.Daemons", "bin", configuration, "net10.0", "vipd.dll");
                if (File.Exists(built))
                {
                    return built;
                }
            }

            throw new FileNotFoundException("vipd.dll is not next to the test assembly; build Vip.Tests (it references Vip.Daemons)", here);
        }
    }

    /// <summary>The dotnet host running these tests (used to start vipd), or "dotnet" from the PATH.</summary>
    public static string DotnetHost => Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";

    /// <summary>A label for messages (e.g. "tier1-a").</summary>
    public string Name { get; }

    /// <summary>The vipd role.</summary>
    public string Role { get; }

    /// <summary>The pid of the last started process (running or not).</summary>
    public int Id => _process?.Id ?? throw new InvalidOperationException($"{Name} was never started");

    /// <summary>The pid of the running process, or -1.</summary>
    public int Pid => _process is { HasExited: false } p ? p.Id : -1;

    /// <summary>True while the process runs.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>Stopwatch timestamp of the last <see cref="Start()"/>.</summary>
    public long LastStartedAt { get; private set; }

    /// <summary>Times the process was started.</summary>
    public int Starts { get; private set; }

    /// <summary>Raised for every output line (stdout and stderr), from a background thread.</summary>
    public event Action<string>? Line;

    /// <summary>Everything written to stderr (the logs) so far, over all starts (capped at 4 M characters).</summary>
    public string StandardError { get { lock (_stderr) { return _stderr.ToString(); } } }

    /// <summary>Everything written to stdout so far, over all starts (capped at 4 M characters).</summary>
    public string StandardOutput { get { lock (_stdout) { return _stdout.ToString(); } } }

    /// <summary>Lines printed so far (the last few hundred, both streams).</summary>
    public IReadOnlyList<string> Lines => [.. _lines];

    /// <summary>The command line, for messages.</summary>
    public string CommandLine => (_netns is null ? "" : $"ip netns exec {_netns} ") + $"dotnet vipd.dll {Role} {string.Join(' ', _args)}";

    /// <summary>Starts <c>dotnet vipd.dll ARGS</c> (the first argument is the role).</summary>
    public static VipdProcess Start(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var p = new VipdProcess([.. args], environment);
        p.Start();
        return p;
    }

    /// <summary>
    /// Starts vipd through <c>sh -c 'export SYSTEMD_EXEC_PID=$$; exec dotnet vipd.dll ...'</c>, so that the
    /// process systemd detection looks at carries its own pid in SYSTEMD_EXEC_PID, as under systemd.
    /// </summary>
    public static VipdProcess StartAsSystemdService(IEnumerable<string> args, IReadOnlyDictionary<string, string?> environment)
    {
        var p = new VipdProcess([.. args], environment);
        var psi = new ProcessStartInfo("sh");
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("export SYSTEMD_EXEC_PID=$$; exec \"$@\"");
        psi.ArgumentList.Add("sh"); // $0
        psi.ArgumentList.Add(DotnetHost);
        psi.ArgumentList.Add(DllPath);
        psi.ArgumentList.Add(p.Role);
        foreach (var a in p._args)
        {
            psi.ArgumentList.Add(a);
        }

        p.Launch(psi);
        return p;
    }

    /// <summary>Runs vipd to completion (bounded by <paramref name="timeout"/>, else the test fails) and returns exit code and output.</summary>
    public static async Task<(int ExitCode, string StdOut, string StdErr)> RunAsync(IEnumerable<string> args, TimeSpan timeout, IReadOnlyDictionary<string, string?>? environment = null)
    {
        using var p = Start(args, environment);
        var code = await p.WaitForExitAsync(timeout);
        return (code, p.StandardOutput, p.StandardError);
    }

    /// <summary>
    /// Runs a vipd command to its end (keygen, submit), optionally inside <paramref name="netns"/>, and returns its exit
    /// code (-1 when it had to be killed after <paramref name="timeout"/>) and output.
    /// </summary>
    public static (int Code, string Stdout, string Stderr) RunToEnd(string role, IEnumerable<string> args, TimeSpan timeout, string? netns = null)
    {
        using var p = new VipdProcess("vipd", role, args, netns);
        p.Start();
        if (!p._process!.WaitForExit(timeout))
        {
            p.Kill();
            return (-1, p.StandardOutput, p.StandardError + $"\n(killed after {timeout.TotalSeconds} s)");
        }

        p._process.WaitForExit(); // drains the asynchronous output readers
        ProcessRegistry.Remove(p._process.Id);
        return (p._process.ExitCode, p.StandardOutput, p.StandardError);
    }

    private static readonly Lazy<string> RoleList = new(() => RunToEnd("help", [], TimeSpan.FromSeconds(60)).Stdout);

    /// <summary>True when this build of vipd has <paramref name="role"/> (from one <c>vipd help</c>, asked once).</summary>
    public static bool HasRole(string role)
        => RoleList.Value.Split('\n').Any(l => l.StartsWith("  " + role + " ", StringComparison.Ordinal));

    /// <summary>Starts the process (again, if it was killed); the same command each time.</summary>
    public void Start()
    {
        if (IsRunning)
        {
            throw new InvalidOperationException($"{Name} is already running (pid {Pid})");
        }

        var psi = new ProcessStartInfo();

        // `ip netns exec` enters the namespace and then execs the program, so the pid we get is vipd's own.
        if (_netns is not null)
        {
            psi.FileName = "ip";
            foreach (var a in (string[])["netns", "exec", _netns, DotnetHost])
            {
                psi.ArgumentList.Add(a);
            }
        }
        else
        {
            psi.FileName = DotnetHost;
        }

        psi.ArgumentList.Add(DllPath);
        psi.ArgumentList.Add(Role);
        foreach (var a in _args)
        {
            psi.ArgumentList.Add(a);
        }

        Launch(psi);
    }

    private void Launch(ProcessStartInfo psi)
    {
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.RedirectStandardInput = true;
        psi.UseShellExecute = false;
        foreach (var name in CleanedVariables)
        {
            psi.Environment.Remove(name);
        }

        psi.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (k, v) in _environment)
        {
            psi.Environment[k] = v;
        }

        _process?.Dispose();
        var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
        p.OutputDataReceived += (_, e) => Keep(e.Data, _stdout);
        p.ErrorDataReceived += (_, e) => Keep(e.Data, _stderr);
        if (!p.Start())
        {
            throw new InvalidOperationException($"could not start {CommandLine}");
        }

        ProcessRegistry.Add(p.Id);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _process = p;
        LastStartedAt = Stopwatch.GetTimestamp();
        Starts++;
        Keep($"--- started pid {p.Id}: {CommandLine}", null);
    }

    /// <summary>kill -9 this process (by pid, not its children) and waits until it is gone.</summary>
    public void Kill()
    {
        var p = _process;
        if (p is null || p.HasExited)
        {
            return;
        }

        var pid = p.Id;
        p.Kill(entireProcessTree: false); // SIGKILL on Linux
        p.WaitForExit(10_000);
        ProcessRegistry.Remove(pid);
        Keep($"--- killed pid {pid} with SIGKILL", null);
    }

    /// <summary>Sends SIGTERM, as systemd does on stop.</summary>
    public void Terminate() => Signal("TERM");

    /// <summary>
    /// Sends SIGSTOP: the process freezes with its sockets open, as a host that vanished without closing its
    /// connections looks to its peers. <see cref="Kill"/> still ends it.
    /// </summary>
    public void Freeze()
    {
        Signal("STOP");
        Keep($"--- froze pid {Id} with SIGSTOP", null);
    }

    private void Signal(string signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-" + signal, Id.ToString(CultureInfo.InvariantCulture)]) { UseShellExecute = false })!;
        kill.WaitForExit();
        Assert.That(kill.ExitCode, Is.Zero, $"kill -{signal} {Id}");
    }

    /// <summary>Waits for the exit (and the end of its output); fails the test if it takes longer than <paramref name="timeout"/>.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        var p = _process ?? throw new InvalidOperationException($"{Name} was never started");
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"vipd (pid {p.Id}) did not exit within {timeout}; stderr so far:\n{StandardError}");
        }

        p.WaitForExit(); // drains the asynchronous output readers
        ProcessRegistry.Remove(p.Id);
        return p.ExitCode;
    }

    /// <summary>Waits until a TCP connection to <paramref name="endpoint"/> succeeds, or fails with the process output.</summary>
    public void WaitForTcp(IPEndPoint endpoint, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (!IsRunning)
            {
                Assert.Fail($"{Name} exited with code {_process?.ExitCode} before listening on {endpoint}:\n{Output()}");
            }

            try
            {
                using var s = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                s.Connect(endpoint);
                return;
            }
            catch (SocketException)
            {
                Thread.Sleep(50);
            }
        }

        Assert.Fail($"{Name} did not listen on {endpoint} within {timeout.TotalSeconds} s:\n{Output()}");
    }

    /// <summary>Waits until an output line contains <paramref name="text"/>; returns the line.</summary>
    public string WaitForLine(string text, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            var hit = _lines.FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal));
            if (hit is not null)
            {
                return hit;
            }

            if (!IsRunning && _process is not null)
            {
                Assert.Fail($"{Name} exited with code {_process.ExitCode} before printing '{text}':\n{Output()}");
            }

            Thread.Sleep(25);
        }

        Assert.Fail($"{Name} did not print '{text}' within {timeout.TotalSeconds} s:\n{Output()}");
        return "";
    }

    /// <summary>The Stopwatch timestamp of the first line after <paramref name="since"/> containing <paramref name="text"/>, or null.</summary>
    public long? FirstLineAfter(long since, string text)
    {
        foreach (var (at, line) in _timed)
        {
            if (at >= since && line.Contains(text, StringComparison.Ordinal))
            {
                return at;
            }
        }

        return null;
    }

    /// <summary>The last lines kept, for failure messages.</summary>
    public string Output() => $"[{Name}] " + string.Join("\n[" + Name + "] ", _lines.TakeLast(60));

    private void Keep(string? line, StringBuilder? stream)
    {
        if (line is null)
        {
            return;
        }

        if (stream is not null)
        {
            lock (stream)
            {
                if (stream.Length < MaxCapturedChars)
                {
                    stream.AppendLine(line);
                }
            }
        }

        _lines.Enqueue(line);
        _timed.Enqueue((Stopwatch.GetTimestamp(), line));
        while (_timed.Count > TimedLines && _timed.TryDequeue(out _))
        {
        }

        while (_lines.Count > KeptLines && _lines.TryDequeue(out _))
        {
        }

        Line?.Invoke(line);
    }

    /// <summary>Kills the process (and any child it started) if it still runs.</summary>
    public void Dispose()
    {
        var p = _process;
        if (p is not null)
        {
            try
            {
                if (!p.HasExited)
                {
                    p.Kill(entireProcessTree: true);
                    p.WaitForExit(10_000);
                }

                ProcessRegistry.Remove(p.Id);
            }
            catch (InvalidOperationException)
            {
                // never started or already reaped
            }

            p.Dispose();
        }
    }
}

/// <summary>
/// The pids of every vipd process the tests started and have not yet reaped. If the test host goes down, they are
/// killed by pid (never by name).
/// </summary>
internal static class ProcessRegistry
{
    private static readonly ConcurrentDictionary<int, bool> Pids = new();

    static ProcessRegistry() => AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();

    public static void Add(int pid) => Pids[pid] = true;

    public static void Remove(int pid) => Pids.TryRemove(pid, out _);

    /// <summary>Pids still registered.</summary>
    public static IReadOnlyCollection<int> Live => [.. Pids.Keys];

    private static void KillAll()
    {
        foreach (var pid in Pids.Keys)
        {
            try
            {
                using var p = Process.GetProcessById(pid);
                p.Kill();
            }
            catch (ArgumentException)
            {
                // already gone
            }
            catch (InvalidOperationException)
            {
                // already gone
            }
        }
    }
}
