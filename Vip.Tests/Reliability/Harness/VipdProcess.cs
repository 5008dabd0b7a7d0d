using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Vip.Tests.Reliability.Harness;

/// <summary>
/// One <c>vipd</c> daemon run as its own process (<c>dotnet vipd.dll ROLE ...</c>), optionally inside a network
/// namespace. Output is kept (the last lines) for failure messages. <see cref="Kill"/> sends SIGKILL to this pid only;
/// <see cref="Restart"/> starts the same command again. Disposing kills the process if it still runs.
/// </summary>
internal sealed class VipdProcess : IDisposable
{
    private const int KeptLines = 400;
    private readonly string[] _args;
    private readonly string? _netns;
    private readonly ConcurrentQueue<string> _lines = new();
    private Process? _process;

    public VipdProcess(string name, string role, IEnumerable<string> args, string? netns = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        Name = name;
        Role = role;
        _args = [.. args];
        _netns = netns;
        _environment = environment ?? new Dictionary<string, string>();
    }

    private readonly IReadOnlyDictionary<string, string> _environment;

    /// <summary>Line arrival times (Stopwatch timestamps), parallel to the kept lines, for measuring reaction times.</summary>
    private readonly ConcurrentQueue<(long At, string Line)> _timed = new();

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

    /// <summary>Runs a vipd command to its end (keygen, submit) and returns its exit code and output.</summary>
    public static (int Code, string Stdout, string Stderr) RunToEnd(string role, IEnumerable<string> args, TimeSpan timeout, string? netns = null)
    {
        var psi = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (netns is not null)
        {
            psi.FileName = "ip";
            foreach (var a in (string[])["netns", "exec", netns, RepoPaths.DotnetHost])
            {
                psi.ArgumentList.Add(a);
            }
        }
        else
        {
            psi.FileName = RepoPaths.DotnetHost;
        }

        psi.ArgumentList.Add(RepoPaths.VipdDll);
        psi.ArgumentList.Add(role);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        ProcessRegistry.Add(p.Id);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill();
            p.WaitForExit(5000);
            ProcessRegistry.Remove(p.Id);
            return (-1, stdout.Result, stderr.Result + $"\n(killed after {timeout.TotalSeconds} s)");
        }

        p.WaitForExit();
        ProcessRegistry.Remove(p.Id);
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>True when this build of vipd has <paramref name="role"/>.</summary>
    public static bool HasRole(string role)
    {
        var (code, _, _) = RunToEnd(role, ["--help"], TimeSpan.FromSeconds(60));
        return code == 0;
    }

    /// <summary>A label for messages (e.g. "tier1-a").</summary>
    public string Name { get; }

    /// <summary>The vipd role.</summary>
    public string Role { get; }

    /// <summary>The pid of the running process, or -1.</summary>
    public int Pid => _process is { HasExited: false } p ? p.Id : -1;

    /// <summary>True while the process runs.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>Stopwatch timestamp of the last <see cref="Start"/>.</summary>
    public long LastStartedAt { get; private set; }

    /// <summary>Times the process was started.</summary>
    public int Starts { get; private set; }

    /// <summary>Raised for every output line (stdout and stderr), from a background thread.</summary>
    public event Action<string>? Line;

    /// <summary>The command line, for messages.</summary>
    public string CommandLine => (_netns is null ? "" : $"ip netns exec {_netns} ") + $"dotnet vipd.dll {Role} {string.Join(' ', _args)}";

    /// <summary>Starts the process (again, if it was killed).</summary>
    public void Start()
    {
        if (IsRunning)
        {
            throw new InvalidOperationException($"{Name} is already running (pid {Pid})");
        }

        _process?.Dispose();
        var psi = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };

        // `ip netns exec` enters the namespace and then execs the program, so the pid we get is vipd's own.
        if (_netns is not null)
        {
            psi.FileName = "ip";
            psi.ArgumentList.Add("netns");
            psi.ArgumentList.Add("exec");
            psi.ArgumentList.Add(_netns);
            psi.ArgumentList.Add(RepoPaths.DotnetHost);
        }
        else
        {
            psi.FileName = RepoPaths.DotnetHost;
        }

        psi.ArgumentList.Add(RepoPaths.VipdDll);
        psi.ArgumentList.Add(Role);
        foreach (var a in _args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["DOTNET_ENVIRONMENT"] = "Test";
        psi.Environment["DOTNET_gcServer"] = "0";
        psi.Environment["DOTNET_TieredPGO"] = "0";
        foreach (var (k, v) in _environment)
        {
            psi.Environment[k] = v;
        }
        var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
        p.OutputDataReceived += (_, e) => Keep(e.Data);
        p.ErrorDataReceived += (_, e) => Keep(e.Data);
        if (!p.Start())
        {
            throw new InvalidOperationException($"could not start {CommandLine}");
        }

        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _process = p;
        LastStartedAt = Stopwatch.GetTimestamp();
        Starts++;
        ProcessRegistry.Add(p.Id);
        Keep($"--- started pid {p.Id}: {CommandLine}");
    }

    /// <summary>kill -9 this process (by pid) and waits until it is gone.</summary>
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
        Keep($"--- killed pid {pid} with SIGKILL");
    }

    /// <summary>Kills (if running) and starts the same command again.</summary>
    public void Restart()
    {
        Kill();
        Start();
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

    /// <summary>Lines printed so far (the last few hundred).</summary>
    public IReadOnlyList<string> Lines => [.. _lines];

    /// <summary>The kept output, for failure messages.</summary>
    public string Output() => $"[{Name}] " + string.Join("\n[" + Name + "] ", _lines.TakeLast(60));

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        _lines.Enqueue(line);
        _timed.Enqueue((Stopwatch.GetTimestamp(), line));
        while (_timed.Count > 20_000 && _timed.TryDequeue(out _))
        {
        }

        while (_lines.Count > KeptLines && _lines.TryDequeue(out _))
        {
        }

        Line?.Invoke(line);
    }

    public void Dispose()
    {
        Kill();
        _process?.Dispose();
    }
}

/// <summary>
/// The pids of every process the reliability tests started and have not yet reaped. If the test host goes down,
/// they are killed by pid (never by name).
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
