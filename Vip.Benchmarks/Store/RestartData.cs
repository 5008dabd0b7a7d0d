using System.Diagnostics;
using System.Globalization;
using System.Net;
using Vip.Selection;
using Vip.Store;
using ClientRecord = Vip.Selection.ClientRecord;
using NetworkRule = Vip.Selection.NetworkRule;
using SelectionState = Vip.Selection.ServerState;

namespace Vip.Benchmarks.Store;

/// <summary>
/// The restart data set (10 000 servers with 4 attributes, 10 000 clients, 1 000 network rules) and the restart
/// itself, shared by <see cref="StoreBenchmarks"/> (warm process) and <see cref="RestartCommand"/> (fresh processes).
/// </summary>
public static class RestartData
{
    /// <summary>Writes the data set into a new store at <paramref name="path"/>.</summary>
    public static void Create(string path, int servers)
    {
        using var store = VipStore.Open(new StoreOptions { Path = path, MaxBatchSize = 1000 });
        var writes = new List<Task>();
        for (var i = 0; i < servers; i++)
        {
            var attrs = new Dictionary<string, string>
            {
                ["region"] = (i % 3) switch { 0 => "eu", 1 => "us", _ => "ap" },
                ["pool"] = i % 10 == 0 ? "gold" : "std",
                ["cores"] = (8 << (i % 4)).ToString(CultureInfo.InvariantCulture),
                ["rack"] = "r" + (i % 64),
            };
            writes.Add(store.RegisterServerAsync(new AppServerRegistration("app-" + i, new IPEndPoint(IPAddress.Parse("10.0.0.1"), 20000 + (i % 40000)), attrs, 16)));
            writes.Add(store.SetClientAsync("client-" + i, new Dictionary<string, string> { ["pool"] = i % 10 == 0 ? "gold" : "std" }));
        }

        for (var i = 0; i < 1000; i++)
        {
            writes.Add(store.SetNetworkRuleAsync(new IPNetwork(new IPAddress([10, (byte)(i / 256), (byte)(i % 256), 0]), 24), new Dictionary<string, string> { ["site"] = "s" + (i % 7) }));
        }

        Task.WhenAll(writes).GetAwaiter().GetResult();
    }

    /// <summary>
    /// Opens the store, loads it into a selection engine the way <c>Tier2Server</c> does (default options, one publication; servers as not yet heard
    /// from), lets one server heartbeat and selects it with a two-term requirement; closes everything.
    /// </summary>
    /// <returns>The number of servers loaded.</returns>
    public static int OpenLoadAndSelect(string path) => OpenLoadAndSelect(path, out _);

    /// <inheritdoc cref="OpenLoadAndSelect(string)"/>
    /// <param name="path">The store file.</param>
    /// <param name="openTime">How long opening the store (reading everything into its snapshot) took.</param>
    public static int OpenLoadAndSelect(string path, out TimeSpan openTime)
    {
        long start = Stopwatch.GetTimestamp();
        using var store = VipStore.Open(new StoreOptions { Path = path });
        openTime = Stopwatch.GetElapsedTime(start);
        using var engine = new SelectionEngine(new SelectionOptions { BindingKeys = ["pool"], MaxServers = 1 << 20 });
        var snapshot = store.Snapshot;
        engine.RegisterMany(snapshot.Servers.Values.Select(s => new ServerRegistration(s.Record.Id, s.Record.Service, s.Record.Capacity, s.Record.Attributes)), SelectionState.Unknown);
        engine.ReplaceClients(snapshot.Clients.Values.Select(c => new ClientRecord(c.Id, c.Attributes)));
        engine.SetNetworkRules(snapshot.Networks.Values.Select(n => new NetworkRule(n.Network, n.Attributes)));
        engine.Publish();

        if (!engine.Heartbeat("app-10", new ServerHeartbeat(100, 1, false)))
        {
            throw new InvalidOperationException("app-10 was not loaded");
        }

        var result = engine.Select(new SelectionRequest("client-10"u8, [10, 0, 1, 2], "job"u8, [], "region=us, cores>=8"u8));
        if (!result.IsSelected || result.Server!.Id != "app-10")
        {
            throw new InvalidOperationException("the reloaded engine did not select app-10: " + result.Outcome);
        }

        return engine.Servers.Count;
    }
}

/// <summary>
/// <c>Vip.Benchmarks store-restart [--runs N] [--servers N]</c>: the restart time of a fresh process (JIT included),
/// which BenchmarkDotNet's warm-process figure leaves out. Creates the data set once, then starts this program
/// N times as <c>store-restart --child PATH</c>; each child times open + load + first selection from its own start
/// and prints its wall and CPU time. Reports each run and the medians.
/// </summary>
public static class RestartCommand
{
    public static int Run(string[] args)
    {
        if (args.Length == 2 && args[0] == "--child")
        {
            var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            var wall = Stopwatch.StartNew();
            int loaded = RestartData.OpenLoadAndSelect(args[1], out TimeSpan open);
            wall.Stop();
            var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
            var sinceStart = DateTime.Now - Process.GetCurrentProcess().StartTime;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{loaded} {wall.Elapsed.TotalMilliseconds:F1} {cpu.TotalMilliseconds:F1} {sinceStart.TotalMilliseconds:F1} {open.TotalMilliseconds:F1}"));
            return 0;
        }

        int runs = Option(args, "--runs", 5);
        int servers = Option(args, "--servers", 10_000);
        string dir = Path.Combine(Path.GetTempPath(), "vip-restart-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string db = Path.Combine(dir, "restart.db");
            RestartData.Create(db, servers);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"data set: {servers} servers, {servers} clients, 1000 rules, {new FileInfo(db).Length / 1e6:F1} MB; load average {LoadAverage()}"));
            int vipdAt = Array.IndexOf(args, "--vipd");
            if (vipdAt >= 0 && vipdAt + 1 < args.Length)
            {
                return RunDaemon(args[vipdAt + 1], db, dir, runs);
            }

            Console.WriteLine("run  ready (wall ms, from open)  of which store open  CPU ms  since process start ms");
            var walls = new List<double>();
            var cpus = new List<double>();
            var totals = new List<double>();
            var opens = new List<double>();
            for (int r = 0; r < runs; r++)
            {
                var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, UseShellExecute = false };
                if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet")
                {
                    psi.ArgumentList.Add(typeof(RestartCommand).Assembly.Location);
                }

                psi.ArgumentList.Add("store-restart");
                psi.ArgumentList.Add("--child");
                psi.ArgumentList.Add(db);
                using var child = Process.Start(psi)!;
                string line = child.StandardOutput.ReadToEnd().Trim();
                if (!child.WaitForExit(120_000) || child.ExitCode != 0)
                {
                    throw new InvalidOperationException("child run failed: " + line);
                }

                string[] f = line.Split(' ');
                walls.Add(double.Parse(f[1], CultureInfo.InvariantCulture));
                cpus.Add(double.Parse(f[2], CultureInfo.InvariantCulture));
                totals.Add(double.Parse(f[3], CultureInfo.InvariantCulture));
                opens.Add(double.Parse(f[4], CultureInfo.InvariantCulture));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r + 1,3}  {walls[^1],10:F0}  {opens[^1],10:F0}  {cpus[^1],8:F0}  {totals[^1],8:F0}"));
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"median: ready {Median(walls):F0} ms wall (store open {Median(opens):F0} ms), {Median(cpus):F0} ms CPU, {Median(totals):F0} ms since process start; load average {LoadAverage()}"));
            return 0;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// The real daemon's restart: starts <c>vipd tier2</c> (a published executable, or <c>vipd.dll</c> run by dotnet)
    /// on the data set <paramref name="runs"/> times and times exec → its "listening" log line (store open, loaded into
    /// the engine, both ports bound), then stops it with SIGTERM. Each run is bounded to 60 s.
    /// </summary>
    private static int RunDaemon(string vipd, string db, string dir, int runs)
    {
        string key = Path.Combine(dir, "ticket.key");
        Vip.Tickets.TicketKeyFile.Save(key, Vip.Tickets.TicketKeyRing.CreateNew(), overwrite: false);
        Console.WriteLine($"vipd tier2 from {vipd}: exec → 'listening' line (ms)");
        var walls = new List<double>();
        for (int r = 0; r < runs; r++)
        {
            var psi = new ProcessStartInfo(vipd.EndsWith(".dll", StringComparison.Ordinal) ? "dotnet" : vipd)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            if (vipd.EndsWith(".dll", StringComparison.Ordinal))
            {
                psi.ArgumentList.Add(vipd);
            }

            foreach (var a in new[] { "tier2", "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--db", db, "--ticket-key-file", key, "--id", "restart" })
            {
                psi.ArgumentList.Add(a);
            }

            var wall = Stopwatch.StartNew();
            using var child = Process.Start(psi)!;
            var ready = new TaskCompletionSource<double>(TaskCreationOptions.RunContinuationsAsynchronously);
            void Watch(object sender, DataReceivedEventArgs e)
            {
                if (e.Data is { } line && line.Contains("listening for tier-1", StringComparison.Ordinal))
                {
                    ready.TrySetResult(wall.Elapsed.TotalMilliseconds);
                }
            }

            child.OutputDataReceived += Watch;
            child.ErrorDataReceived += Watch;
            child.BeginOutputReadLine();
            child.BeginErrorReadLine();
            bool done = ready.Task.Wait(TimeSpan.FromSeconds(60));
            if (!child.HasExited)
            {
                _ = Vip.Benchmarks.Compare.ChildProcess.SysKill(child.Id, Vip.Benchmarks.Compare.ChildProcess.SigTerm); // by pid
            }

            if (!child.WaitForExit(30_000))
            {
                child.Kill();
            }

            if (!done)
            {
                throw new InvalidOperationException("vipd tier2 did not report listening within 60 s");
            }

            walls.Add(ready.Task.Result);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r + 1,3}  {walls[^1],8:F0}"));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"median: vipd tier2 ready {Median(walls):F0} ms after exec; load average {LoadAverage()}"));
        return 0;
    }

    internal static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    internal static int Option(string[] args, string name, int fallback)
    {
        int at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
    }

    internal static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
}
