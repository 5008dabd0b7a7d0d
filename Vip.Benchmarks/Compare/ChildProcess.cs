using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Vip.Benchmarks.Compare;

/// <summary>A long-running peer process (a proxy, a backend) that the harness started and stops by its pid.</summary>
internal sealed class ChildProcess : IAsyncDisposable
{
    private const int TailLines = 30;
    internal const int SigTerm = 15;
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10);

    private readonly Process _process;
    private readonly Queue<string> _tail = new();
    private readonly List<(string Text, TaskCompletionSource Seen)> _awaited = [];
    private readonly Lock _gate = new();

    private ChildProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Starts <paramref name="file"/> with its output kept (the last lines) for error messages.</summary>
    public static ChildProcess Start(
        string name, string file, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                psi.Environment[key] = value;
            }
        }

        var process = new Process { StartInfo = psi };
        var child = new ChildProcess(name, process);
        process.OutputDataReceived += (_, e) => child.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => child.Keep(e.Data);
        if (!process.Start())
        {
            throw new InvalidOperationException($"{name}: could not start {file}");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>The last lines the process wrote, joined; for "it died, here is why" messages.</summary>
    public string Tail()
    {
        lock (_gate)
        {
            return string.Join(" | ", _tail);
        }
    }

    /// <summary>Resident set size of the process in bytes, from /proc/PID/status (VmRSS).</summary>
    public long ResidentBytes()
    {
        foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                var kib = line["VmRSS:".Length..].Trim().Split(' ')[0];
                return long.Parse(kib, CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException($"{Name}: no VmRSS in /proc/{Pid}/status");
    }

    /// <summary>Waits until the process prints a line containing <paramref name="text"/> (from now on), or dies, or the deadline passes.</summary>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (_tail.Any(l => l.Contains(text, StringComparison.Ordinal)))
            {
                return;
            }

            _awaited.Add((text, seen));
        }

        try
        {
            var deadline = DateTime.UtcNow + timeout;
            while (!seen.Task.IsCompleted)
            {
                ThrowIfExited();
                if (DateTime.UtcNow > deadline)
                {
                    throw new PeerFailedException($"{Name} did not print '{text}' within {timeout.TotalSeconds:0} s: {Tail()}");
                }

                await Task.WhenAny(seen.Task, Task.Delay(50, cancellationToken));
                cancellationToken.ThrowIfCancellationRequested();
            }
        }
        finally
        {
            lock (_gate)
            {
                _awaited.RemoveAll(a => a.Seen == seen);
            }
        }
    }

    /// <summary>Throws with the process's last output if it has exited.</summary>
    public void ThrowIfExited()
    {
        if (_process.HasExited)
        {
            throw new PeerFailedException($"{Name} exited with code {_process.ExitCode}: {Tail()}");
        }
    }

    /// <summary>SIGTERM to this pid, then SIGKILL to this pid if it has not exited after a grace period.</summary>
    public async Task StopAsync()
    {
        if (_process.HasExited)
        {
            return;
        }

        _ = SysKill(Pid, SigTerm);
        using var grace = new CancellationTokenSource(StopGrace);
        try
        {
            await _process.WaitForExitAsync(grace.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: false);
            await _process.WaitForExitAsync(CancellationToken.None);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _process.Dispose();
    }

    private void Keep(string? line)
    {
        if (string.IsNullOrWhiteSpace(line))
        {
            return;
        }

        lock (_gate)
        {
            foreach (var (text, seen) in _awaited)
            {
                if (line.Contains(text, StringComparison.Ordinal))
                {
                    seen.TrySetResult();
                }
            }

            if (_tail.Count == TailLines)
            {
                _tail.Dequeue();
            }

            _tail.Enqueue(line.Trim());
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    internal static extern int SysKill(int pid, int signal);
}

/// <summary>What a one-shot tool (iperf3 client, redis-benchmark) printed and how it ended.</summary>
internal sealed record ToolOutput(int ExitCode, string StandardOutput, string StandardError);

/// <summary>Runs one-shot tools with a deadline: a tool that overruns it is killed (by its pid) and reported.</summary>
internal static class ToolRun
{
    public static async Task<ToolOutput> RunAsync(string file, IEnumerable<string> args, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: false);
            await process.WaitForExitAsync(CancellationToken.None);
            cancellationToken.ThrowIfCancellationRequested();
            throw new PeerFailedException($"{Path.GetFileName(file)} did not finish within {timeout.TotalSeconds:0} s (killed)");
        }

        return new ToolOutput(process.ExitCode, await stdout, await stderr);
    }
}

/// <summary>A peer or a tool failed in a way that voids one figure (not the whole run).</summary>
internal sealed class PeerFailedException(string message) : Exception(message);
