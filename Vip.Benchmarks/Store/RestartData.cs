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
/// <c>Vip.Benchmarks store-restart [--runs N] [--servers N] [--data PATH] [--vipd [NAME=VALUE,...@]PATH ...]</c>: the restart time of a fresh process (JIT included),
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

        if (args.Length == 2 && args[0] == "--probe")
        {
            return StoreReadProbe.Run(args[1]);
        }

        int runs = Option(args, "--runs", 5);
        int servers = Option(args, "--servers", 10_000);
        string? keep = StringOption(args, "--data");
        string dir = keep is null ? Path.Combine(Path.GetTempPath(), "vip-restart-" + Guid.NewGuid().ToString("N")) : Path.GetDirectoryName(Path.GetFullPath(keep))!;
        Directory.CreateDirectory(dir);
        try
        {
            string db = keep is null ? Path.Combine(dir, "restart.db") : Path.GetFullPath(keep);
            if (!File.Exists(db))
            {
                RestartData.Create(db, servers);
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"data set: {db}, {new FileInfo(db).Length / 1e6:F1} MB; load average {LoadAverage()}"));
            var daemons = args.Select((a, i) => (a, i)).Where(p => p.a == "--vipd" && p.i + 1 < args.Length).Select(p => DaemonSpec.Parse(args[p.i + 1])).ToList();
            if (daemons.Count > 0)
            {
                return RunDaemons(daemons, db, dir, runs);
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
            if (keep is null)
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>
    /// A daemon to time: <c>[NAME=VALUE,...@]PATH</c> (environment variables for the child, then the executable or
    /// vipd.dll). The pseudo-variable <c>DB=FILE</c> gives this daemon its own store file (e.g. an older layout for an
    /// older build); the others share the data set.
    /// </summary>
    private sealed record DaemonSpec(string Label, string Path, IReadOnlyList<(string Name, string Value)> Environment)
    {
        public string? Database => Environment.Where(e => e.Name == "DB").Select(e => e.Value).FirstOrDefault();

        public static DaemonSpec Parse(string text)
        {
            int at = text.LastIndexOf('@');
            var env = new List<(string, string)>();
            if (at > 0)
            {
                foreach (string pair in text[..at].Split(',', StringSplitOptions.RemoveEmptyEntries))
                {
                    int eq = pair.IndexOf('=', StringComparison.Ordinal);
                    env.Add(eq > 0 ? (pair[..eq], pair[(eq + 1)..]) : throw new ArgumentException("--vipd NAME=VALUE,...@PATH: '" + pair + "' has no '='"));
                }
            }

            return new DaemonSpec(text, text[(at + 1)..], env);
        }
    }

    /// <summary>One timed start of <c>vipd tier2</c>: milliseconds after exec, from the harness's clock and the daemon's log timestamps.</summary>
    private sealed class DaemonRun
    {
        public double Ready { get; set; } = double.NaN;          // the "listening" line reached the harness
        public double Cpu { get; set; } = double.NaN;            // user + system CPU of the child at that moment
        public double OpenStart { get; set; } = double.NaN;      // VipStore.Open began (host built, Tier2Server made)
        public double Prepare { get; set; } = double.NaN;        // lock file + header check
        public double LiteDb { get; set; } = double.NaN;         // LiteDB open, checkpoint, schema
        public double Read { get; set; } = double.NaN;           // documents read into the store snapshot
        public double OpenEnd { get; set; } = double.NaN;        // the "opened" line
        public double Listening { get; set; } = double.NaN;      // the "listening" line's own timestamp
        public double JitMethods { get; set; } = double.NaN;     // methods JIT-compiled before the documents were read
        public double JitMs { get; set; } = double.NaN;
        public double Gcs { get; set; } = double.NaN;            // collections before the documents were read (included)
        public double GcMs { get; set; } = double.NaN;
    }

    /// <summary>
    /// The real daemon's restart: starts each <c>vipd tier2</c> (a published executable, or <c>vipd.dll</c> run by dotnet)
    /// on the data set <paramref name="runs"/> times, the daemons taking turns (the first of each round rotates), and
    /// times exec → its "listening" log line (store open, loaded into the engine, both ports bound), then stops it with
    /// SIGTERM. The store's Debug line gives the phases of the open; log timestamps place them after exec. Each run is
    /// bounded to 60 s.
    /// </summary>
    private static int RunDaemons(List<DaemonSpec> daemons, string db, string dir, int runs)
    {
        string key = Path.Combine(dir, "ticket.key");
        if (!File.Exists(key))
        {
            Vip.Tickets.TicketKeyFile.Save(key, Vip.Tickets.TicketKeyRing.CreateNew(), overwrite: false);
        }

        var results = daemons.ToDictionary(d => d, _ => new List<DaemonRun>());
        Console.WriteLine("ms after exec: ready (harness saw 'listening'), CPU at ready, store open began, lock+header, LiteDB open, documents read, engine load + bind (opened → listening line), JIT methods/ms and GCs/pause ms up to the end of the read");
        for (int r = 0; r < runs; r++)
        {
            for (int k = 0; k < daemons.Count; k++)
            {
                var spec = daemons[(r + k) % daemons.Count];
                var run = RunDaemonOnce(spec, db, key);
                results[spec].Add(run);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r + 1,3}  {Format(run)}  load {LoadAverage()}  {spec.Label}"));
            }
        }

        Console.WriteLine("medians:");
        foreach (var spec in daemons)
        {
            var list = results[spec];
            var median = new DaemonRun
            {
                Ready = Median(list.Select(x => x.Ready)),
                Cpu = Median(list.Select(x => x.Cpu)),
                OpenStart = Median(list.Select(x => x.OpenStart)),
                Prepare = Median(list.Select(x => x.Prepare)),
                LiteDb = Median(list.Select(x => x.LiteDb)),
                Read = Median(list.Select(x => x.Read)),
                OpenEnd = Median(list.Select(x => x.OpenEnd)),
                Listening = Median(list.Select(x => x.Listening)),
                JitMethods = Median(list.Select(x => x.JitMethods)),
                JitMs = Median(list.Select(x => x.JitMs)),
                Gcs = Median(list.Select(x => x.Gcs)),
                GcMs = Median(list.Select(x => x.GcMs)),
            };
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"     {Format(median)}  {spec.Label}"));
        }

        Console.WriteLine($"load average {LoadAverage()}");
        return 0;
    }

    private static string Format(DaemonRun x) => string.Create(
        CultureInfo.InvariantCulture,
        $"ready {x.Ready,6:F0}  cpu {x.Cpu,5:F0}  open@ {x.OpenStart,5:F0}  prep {x.Prepare,4:F0}  litedb {x.LiteDb,4:F0}  read {x.Read,4:F0}  engine+bind {x.Listening - x.OpenEnd,4:F0}  jit {x.JitMethods,5:F0}/{x.JitMs,4:F0}ms  gc {x.Gcs,3:F0}/{x.GcMs,4:F0}ms");

    private static DaemonRun RunDaemonOnce(DaemonSpec spec, string db, string key)
    {
        bool dll = spec.Path.EndsWith(".dll", StringComparison.Ordinal);
        var psi = new ProcessStartInfo(dll ? "dotnet" : spec.Path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (dll)
        {
            psi.ArgumentList.Add(spec.Path);
        }

        foreach (var a in new[] { "tier2", "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--db", spec.Database ?? db, "--ticket-key-file", key, "--id", "restart" })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["VIPD_Logging__LogLevel__Vip.Store"] = "Debug"; // the open-phases line (event 4206)
        foreach (var (name, value) in spec.Environment.Where(e => e.Name != "DB"))
        {
            psi.Environment[name] = value;
        }

        var run = new DaemonRun();
        var lines = new List<string>();
        var gate = new Lock();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var wall = Stopwatch.StartNew();
        DateTime exec = DateTime.Now;
        using var child = Process.Start(psi)!;
        void Watch(object sender, DataReceivedEventArgs e)
        {
            if (e.Data is not { } line)
            {
                return;
            }

            lock (gate)
            {
                lines.Add(line);
                if (line.Contains("listening for tier-1", StringComparison.Ordinal) && double.IsNaN(run.Ready))
                {
                    run.Ready = wall.Elapsed.TotalMilliseconds;
                    run.Cpu = CpuMs(child.Id);
                    ready.TrySetResult();
                }
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
            throw new InvalidOperationException("vipd tier2 did not report listening within 60 s: " + string.Join(Environment.NewLine, lines));
        }

        lock (gate)
        {
            foreach (string line in lines)
            {
                Parse(line, exec, run);
            }
        }

        return run;
    }

    // "04:31:07.123 info: Vip.Store.VipStore[4201] Store ... opened in 345 ms: ..." (SimpleConsole, one line, local time).
    private static void Parse(string line, DateTime exec, DaemonRun run)
    {
        if (line.Length < 13 || !TimeSpan.TryParseExact(line.AsSpan(0, 12), @"hh\:mm\:ss\.fff", CultureInfo.InvariantCulture, out var time))
        {
            return;
        }

        double at = (exec.Date + time - exec).TotalMilliseconds;
        if (at < -43_200_000)
        {
            at += 86_400_000; // the run crossed midnight
        }

        if (line.Contains("[4201]", StringComparison.Ordinal) && Number(line, " opened in ", " ms") is { } elapsed)
        {
            run.OpenEnd = at;
            run.OpenStart = at - elapsed;
        }
        else if (line.Contains("[4206]", StringComparison.Ordinal))
        {
            run.Prepare = Number(line, "lock and header ", " ms") ?? double.NaN;
            run.LiteDb = Number(line, "LiteDB open ", " ms") ?? double.NaN;
            run.Read = Number(line, "documents read ", " ms") ?? double.NaN;
            run.JitMethods = Number(line, "so far: JIT ", " methods") ?? double.NaN;
            run.JitMs = Number(line, " methods, ", " ms") ?? double.NaN;
            run.Gcs = Number(line, "; GC ", " collections") ?? double.NaN;
            run.GcMs = Number(line, " collections, ", " ms paused") ?? double.NaN;
        }
        else if (line.Contains("listening for tier-1", StringComparison.Ordinal))
        {
            run.Listening = at;
        }
    }

    private static double? Number(string line, string before, string after)
    {
        int a = line.IndexOf(before, StringComparison.Ordinal);
        if (a < 0)
        {
            return null;
        }

        a += before.Length;
        int b = line.IndexOf(after, a, StringComparison.Ordinal);
        return b > a && double.TryParse(line.AsSpan(a, b - a), NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v : null;
    }

    // utime + stime of a live process, from /proc (clock ticks of 10 ms).
    private static double CpuMs(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            string[] f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture)) * 10.0;
        }
        catch (IOException)
        {
            return double.NaN;
        }
    }

    internal static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToList();
        return sorted.Count == 0 ? double.NaN : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    internal static string? StringOption(string[] args, string name)
    {
        int at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
    }

    internal static int Option(string[] args, string name, int fallback)
    {
        int at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
    }

    internal static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
}
