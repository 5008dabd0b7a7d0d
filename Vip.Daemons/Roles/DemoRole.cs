using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Vip.Agent;
using Vip.Client;
using Vip.Daemons.Hosting;
using Vip.Protocol;

namespace Vip.Daemons.Roles;

/// <summary>
/// <c>vipd demo</c>: starts the whole system in this process on loopback (<see cref="DemoChain"/>), submits a mix of
/// real tasks of every kind from clients with different attributes, shows live progress, then a summary per app
/// server and the rejections by reason.
/// </summary>
internal sealed class DemoRole : IRole
{
    private readonly TextWriter _out;

    public DemoRole()
        : this(Console.Out)
    {
    }

    internal DemoRole(TextWriter output) => _out = output;

    public string Name => "demo";

    public string Summary => "run the whole system on loopback and submit real tasks (the README's first command)";

    public string Usage => """
        usage: vipd demo [--tasks N] [--duration D] [--concurrency N] [--json] [--verbose] [--load]

          --tasks N        tasks to submit (default 400)
          --duration D     stop submitting after D (default 30s; e.g. 10s, 1m)
          --concurrency N  tasks in flight at once (default 16)
          --json           print one JSON object with the summary instead of tables
          --verbose        show the daemons' logs (warnings and above otherwise)
          --load           instead of the task mix: measure the submit → REDIRECT rate through VIP → tier-1 → tier-2,
                           pipelined (2 connections × 256 in flight) and with 50 clients waiting for each answer

        Starts a VIP box, two tier-1 and two tier-2 daemons (LiteDB files in a temporary folder, deleted at the end)
        and five sample app servers with different attributes on 127.0.0.1; four clients send from 127.0.0.101-104.
        Every task goes client → VIP → tier-1 → tier-2 → REDIRECT → the client claims the app server with its ticket
        and runs the task there. Results are checked (sha256, primes and echo are recomputed here).
        """;

    private static readonly (string Requirement, string Why)[] Requirements =
    [
        ("", "anywhere"),
        ("region=eu", "in the EU"),
        ("gpu=yes", "needs a GPU"),
        ("cpu>=16", "needs 16 cores"),
        ("region=us, cpu>=8", "US, 8 cores"),
        ("gpu=no, region=eu:50", "no GPU, EU preferred"),
        ("cpu>=64", "impossible: no server has 64 cores"),
    ];

    public async Task<int> RunAsync(string[] args)
    {
        var tasks = 400;
        var duration = TimeSpan.FromSeconds(30);
        var concurrency = 16;
        var json = false;
        var verbose = false;
        var load = false;
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new StartupException($"switch {name} needs a value");
            switch (name)
            {
                case "--tasks": tasks = ConfigParse.Int32(Value(), "--tasks", 1, 1_000_000); break;
                case "--duration": duration = ConfigParse.Duration(Value(), "--duration", TimeSpan.FromSeconds(1), TimeSpan.FromHours(1)); break;
                case "--concurrency": concurrency = ConfigParse.Int32(Value(), "--concurrency", 1, 1024); break;
                case "--json": json = true; break;
                case "--verbose": verbose = true; break;
                case "--load": load = true; break;
                default: throw new StartupException($"unknown switch '{name}' (see vipd demo --help)");
            }
        }

        using var loggers = LoggerFactory.Create(b => b.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; })
            .SetMinimumLevel(verbose ? LogLevel.Information : LogLevel.Warning)
            .AddFilter("Vip", verbose ? LogLevel.Information : LogLevel.Error));
        var say = json ? TextWriter.Null : _out;
        say.WriteLine("Starting the system on loopback: VIP box, 2 tier-1, 2 tier-2 (LiteDB), 5 app servers ...");
        var started = Stopwatch.StartNew();
        // Under --load the servers get a capacity the load cannot exhaust: the figure is the dispatch path, not admission.
        var servers = load ? DemoChain.DefaultServers.Select(s => s with { Capacity = 1_000_000 }).ToArray() : null;
        await using var chain = await DemoChain.StartAsync(servers, loggers: loggers).ConfigureAwait(false);
        say.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Ready in {started.Elapsed.TotalSeconds:0.0} s. VIP address {chain.VipEndPoint} (tcp and udp)."));
        say.WriteLine();
        PrintTopology(say, chain);

        if (load)
        {
            await MeasureLoadAsync(chain, duration < TimeSpan.FromSeconds(30) ? duration : TimeSpan.FromSeconds(5), say, json).ConfigureAwait(false);
            return ExitCodes.Ok;
        }

        var stats = new Stats(chain);
        var clients = chain.Clients.ToDictionary(c => c.Id, c => new VipClient(new VipClientOptions { Vip = chain.VipEndPoint, LocalAddress = c.Address }));
        try
        {
            using var stop = new CancellationTokenSource(duration);
            var plan = Plan(chain, tasks);
            var clock = Stopwatch.StartNew();
            var progress = json ? Task.CompletedTask : ShowProgressAsync(stats, tasks, clock, stop.Token);
            var next = -1;
            var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    var i = Interlocked.Increment(ref next);
                    if (i >= plan.Count)
                    {
                        return;
                    }

                    await RunOneAsync(clients[plan[i].Client.Id], plan[i], stats).ConfigureAwait(false);
                }
            })).ToArray();
            await Task.WhenAll(workers).ConfigureAwait(false);
            stats.Elapsed = clock.Elapsed;
            await stop.CancelAsync().ConfigureAwait(false);
            await progress.ConfigureAwait(false);
        }
        finally
        {
            foreach (var c in clients.Values)
            {
                await c.DisposeAsync().ConfigureAwait(false);
            }
        }

        if (json)
        {
            _out.WriteLine(JsonSerializer.Serialize(stats.ToJson()));
        }
        else
        {
            PrintSummary(_out, stats);
        }

        return stats.Wrong == 0 && stats.Errors.IsEmpty ? ExitCodes.Ok : ExitCodes.Failed;
    }

    private async Task MeasureLoadAsync(DemoChain chain, TimeSpan duration, TextWriter say, bool json)
    {
        var tasks = chain.Clients.Select(c => new TaskRequest(c.Id, "echo", [], "", "x"u8.ToArray())).ToArray();
        var results = new List<object>();
        foreach (var (name, connections, pipeline) in new[] { ("pipelined", 2, 256), ("50 clients", 50, 1) })
        {
            say.WriteLine($"load: {name} ({connections} connections × {pipeline} in flight) for {duration.TotalSeconds:0} s ...");
            var r = await VipLoad.RunAsync(new VipLoadOptions
            {
                Vip = chain.VipEndPoint, Tasks = tasks, Connections = connections, Pipeline = pipeline,
                TotalTasks = long.MaxValue, Duration = duration, LocalAddress = chain.Clients[0].Address,
            }).ConfigureAwait(false);
            var line = string.Create(CultureInfo.InvariantCulture,
                $"  {name,-11} {r.AnswersPerSecond,10:N0} tasks/s   p50 {r.P50.TotalMilliseconds:0.000} ms   p99 {r.P99.TotalMilliseconds:0.000} ms   redirects {r.Redirects:N0}   rejects {r.Rejects.Values.Sum():N0} {string.Join(" ", r.Rejects.Select(x => $"{x.Key}={x.Value}"))}  lost {r.Lost}");
            say.WriteLine(line);
            results.Add(new { name, connections, pipeline, tasksPerSecond = Math.Round(r.AnswersPerSecond), p50Ms = r.P50.TotalMilliseconds, p99Ms = r.P99.TotalMilliseconds, redirects = r.Redirects, rejects = r.Rejects.Values.Sum(), lost = r.Lost });
        }

        if (json)
        {
            _out.WriteLine(JsonSerializer.Serialize(results));
        }
    }

    private sealed record Job(DemoClientSpec Client, string Kind, string Requirement, byte[] Body, string Expected);

    private static List<Job> Plan(DemoChain chain, int count)
    {
        var random = new Random(20_260_101);
        var jobs = new List<Job>(count);
        for (var i = 0; i < count; i++)
        {
            var client = chain.Clients[random.Next(chain.Clients.Count)];
            // Rarely the impossible requirement, so rejections show up without dominating.
            var requirement = random.Next(25) == 0 ? Requirements[^1].Requirement : Requirements[random.Next(Requirements.Length - 1)].Requirement;
            var kind = SampleTasks.Kinds[i % SampleTasks.Kinds.Count];
            string body, expected;
            switch (kind)
            {
                case "sha256":
                    body = $"demo payload {i} from {client.Id}";
                    expected = SampleTasks.Sha256Hex(Encoding.UTF8.GetBytes(body));
                    break;
                case "primes":
                    var n = random.Next(10_000, 300_000);
                    body = n.ToString(CultureInfo.InvariantCulture);
                    expected = SampleTasks.CountPrimes(n).ToString(CultureInfo.InvariantCulture);
                    break;
                case "sleep":
                    body = random.Next(5, 40).ToString(CultureInfo.InvariantCulture);
                    expected = "";
                    break;
                default:
                    body = $"hello {i} from {client.Id}";
                    expected = body;
                    break;
            }

            jobs.Add(new Job(client, kind, requirement, Encoding.UTF8.GetBytes(body), expected));
        }

        return jobs;
    }

    private static async Task RunOneAsync(VipClient client, Job job, Stats stats)
    {
        var task = new TaskRequest(job.Client.Id, job.Kind, [], job.Requirement, job.Body);
        try
        {
            var run = await client.RunAsync(task).ConfigureAwait(false);
            var output = Encoding.UTF8.GetString(run.Result.Output.Span);
            var ok = run.Result.Status == 0 && (job.Kind == "sleep" || output.Trim() == job.Expected);
            stats.Record(run.Assignment.ServerId, job.Client.Id, job.Kind, run.Elapsed, ok);
        }
        catch (VipRejectedException ex)
        {
            stats.Reject(ex.Code, job.Requirement);
        }
        catch (Exception ex) when (ex is VipUnreachableException or VipClaimDeniedException or IOException or TimeoutException)
        {
            stats.Errors.Add(ex.Message);
        }
    }

    private async Task ShowProgressAsync(Stats stats, int total, Stopwatch clock, CancellationToken stop)
    {
        var interactive = !Console.IsOutputRedirected && ReferenceEquals(_out, Console.Out);
        var lastPrinted = TimeSpan.Zero;
        while (true)
        {
            var done = stats.Done;
            var line = ProgressLine(stats, total, clock.Elapsed);
            if (interactive)
            {
                _out.Write("\r" + line + "   ");
            }
            else if (clock.Elapsed - lastPrinted >= TimeSpan.FromSeconds(1) || done >= total)
            {
                _out.WriteLine(line);
                lastPrinted = clock.Elapsed;
            }

            if (done >= total || stop.IsCancellationRequested)
            {
                if (interactive)
                {
                    _out.WriteLine();
                }

                return;
            }

            try
            {
                await Task.Delay(200, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private static string ProgressLine(Stats s, int total, TimeSpan elapsed)
    {
        const int width = 30;
        var done = s.Done;
        var filled = (int)Math.Round(width * Math.Min(1.0, done / (double)total));
        var rate = elapsed.TotalSeconds > 0 ? done / elapsed.TotalSeconds : 0;
        return string.Create(CultureInfo.InvariantCulture,
            $"[{new string('█', filled)}{new string('░', width - filled)}] {done,5}/{total}  ran {s.Ran,5}  rejected {s.Rejected,4}  errors {s.Errors.Count,3}  {rate,7:0.0} tasks/s");
    }

    private static void PrintTopology(TextWriter w, DemoChain chain)
    {
        w.WriteLine("  app servers                    attributes");
        foreach (var (spec, agent, _) in chain.Servers)
        {
            w.WriteLine($"  {spec.Id,-10} {agent.AdvertisedEndPoint,-20} {string.Join(" ", spec.Attributes.Select(a => $"{a.Key}={a.Value}"))}, capacity {spec.Capacity}");
        }

        w.WriteLine("  clients                        attributes (in the tier-2 store)");
        foreach (var c in chain.Clients)
        {
            w.WriteLine($"  {c.Id,-10} {c.Address,-20} {(c.Attributes is null ? "(unknown: served with defaults pool=std)" : string.Join(" ", c.Attributes.Select(a => $"{a.Key}={a.Value}")))}");
        }

        w.WriteLine("  binding key: pool (gold clients only on gold servers); clients prefer their own region");
        w.WriteLine();
    }

    private static void PrintSummary(TextWriter w, Stats s)
    {
        w.WriteLine();
        w.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{s.Ran} tasks ran, {s.Rejected} rejected, {s.Errors.Count} errors, {s.Wrong} wrong results, in {s.Elapsed.TotalSeconds:0.0} s"));
        w.WriteLine();
        var rows = s.PerServer.OrderBy(p => p.Key, StringComparer.Ordinal).ToList();
        var max = Math.Max(1, rows.Count == 0 ? 1 : rows.Max(r => r.Value.Count));
        w.WriteLine("┌────────────┬───────┬──────────────────────────────────────┬──────────┬──────────┬──────────────────────┐");
        w.WriteLine("│ app server │ tasks │ kinds                                │ mean ms  │ p99 ms   │ share                │");
        w.WriteLine("├────────────┼───────┼──────────────────────────────────────┼──────────┼──────────┼──────────────────────┤");
        foreach (var (server, p) in rows)
        {
            var kinds = string.Join(" ", p.Kinds.OrderBy(k => k.Key, StringComparer.Ordinal).Select(k => $"{k.Key}×{k.Value}"));
            var bar = new string('█', (int)Math.Round(20.0 * p.Count / max));
            w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"│ {server,-10} │ {p.Count,5} │ {kinds,-36} │ {p.MeanMs,8:0.0} │ {p.P99Ms,8:0.0} │ {bar,-20} │"));
        }

        w.WriteLine("└────────────┴───────┴──────────────────────────────────────┴──────────┴──────────┴──────────────────────┘");
        w.WriteLine();
        w.WriteLine("where each client's tasks ran:");
        foreach (var (client, servers) in s.PerClient.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            w.WriteLine($"  {client,-8} " + string.Join("  ", servers.OrderByDescending(x => x.Value).Select(x => $"{x.Key} {x.Value}")));
        }

        w.WriteLine();
        if (s.Rejections.IsEmpty)
        {
            w.WriteLine("rejections: none");
        }
        else
        {
            w.WriteLine("rejections by reason:");
            foreach (var ((code, requirement), n) in s.Rejections.OrderByDescending(r => r.Value))
            {
                w.WriteLine($"  {code,-18} {n,5}   requirement \"{requirement}\"");
            }
        }

        foreach (var e in s.Errors.Take(5))
        {
            w.WriteLine("error: " + e);
        }
    }

    private sealed class Stats(DemoChain chain)
    {
        private readonly object _lock = new();
        private int _done;

        public int Done => Volatile.Read(ref _done);
        public int Ran;
        public int Rejected;
        public int Wrong;
        public TimeSpan Elapsed;
        public Dictionary<string, ServerStats> PerServer { get; } = chain.Servers.ToDictionary(s => s.Spec.Id, _ => new ServerStats(), StringComparer.Ordinal);
        public Dictionary<string, Dictionary<string, int>> PerClient { get; } = new(StringComparer.Ordinal);
        public ConcurrentDictionary<(RejectCode, string), int> Rejections { get; } = new();
        public ConcurrentBag<string> Errors { get; } = [];

        public void Record(string server, string client, string kind, TimeSpan elapsed, bool ok)
        {
            lock (_lock)
            {
                Ran++;
                if (!ok)
                {
                    Wrong++;
                }

                var p = PerServer.TryGetValue(server, out var existing) ? existing : PerServer[server] = new ServerStats();
                p.Add(kind, elapsed);
                var c = PerClient.TryGetValue(client, out var m) ? m : PerClient[client] = new Dictionary<string, int>(StringComparer.Ordinal);
                c[server] = c.GetValueOrDefault(server) + 1;
            }

            Interlocked.Increment(ref _done);
        }

        public void Reject(RejectCode code, string requirement)
        {
            Interlocked.Increment(ref Rejected);
            Rejections.AddOrUpdate((code, requirement), 1, (_, n) => n + 1);
            Interlocked.Increment(ref _done);
        }

        public object ToJson() => new
        {
            ran = Ran,
            rejected = Rejected,
            wrongResults = Wrong,
            errors = Errors.ToArray(),
            elapsedSeconds = Math.Round(Elapsed.TotalSeconds, 3),
            servers = PerServer.Select(p => new { server = p.Key, tasks = p.Value.Count, kinds = p.Value.Kinds, meanMs = Math.Round(p.Value.MeanMs, 3), p99Ms = Math.Round(p.Value.P99Ms, 3) }).ToArray(),
            clients = PerClient,
            rejections = Rejections.GroupBy(r => r.Key.Item1.ToString()).ToDictionary(g => g.Key, g => g.Sum(x => x.Value)),
        };
    }

    private sealed class ServerStats
    {
        private readonly List<double> _ms = [];

        public int Count => _ms.Count;
        public Dictionary<string, int> Kinds { get; } = new(StringComparer.Ordinal);
        public double MeanMs => _ms.Count == 0 ? 0 : _ms.Average();

        public double P99Ms
        {
            get
            {
                if (_ms.Count == 0)
                {
                    return 0;
                }

                var sorted = _ms.Order().ToArray();
                return sorted[Math.Clamp((int)Math.Ceiling(0.99 * sorted.Length) - 1, 0, sorted.Length - 1)];
            }
        }

        public void Add(string kind, TimeSpan elapsed)
        {
            _ms.Add(elapsed.TotalMilliseconds);
            Kinds[kind] = Kinds.GetValueOrDefault(kind) + 1;
        }
    }
}
