namespace Vip.Benchmarks.Compare;

/// <summary>The switches of <c>Vip.Benchmarks compare</c>.</summary>
internal sealed class CompareOptions
{
    public const string Usage =
        """
        usage: dotnet run -c Release --project Vip.Benchmarks -- compare [switches]

          --quick            shorter loads and 3 runs (about 3 minutes instead of 6)
          --runs N           runs per figure (median taken; default 5, quick 3; 1..15)
          --only LIST        comma-separated scenarios: bulk,rr,churn,udp,memory,chain (default: all)
          --write-docs       rewrite the generated regions of docs/benchmarks.md and docs/benchmarks-latency.svg
          --vipd PATH        vipd.dll to run (default: Vip.Daemons/bin/Release/net10.0/vipd.dll)
          --out DIR          where the run's table, chart and raw figures go (default: artifacts/compare)

        Peers (HAProxy, iperf3, redis, nginx, socat) are found on PATH; a missing one is reported, never installed.
        Every load runs on 127.0.0.1 and is bounded in time.
        """;

    /// <summary>Every scenario key, in the order they run.</summary>
    public static readonly IReadOnlyList<string> ScenarioKeys = ["bulk", "rr", "churn", "udp", "memory", "chain"];

    public bool Quick { get; private init; }

    public int Runs { get; private init; }

    public IReadOnlySet<string> Only { get; private init; } = new HashSet<string>(ScenarioKeys, StringComparer.Ordinal);

    public bool WriteDocs { get; private init; }

    public bool Help { get; private init; }

    public string? VipdPath { get; private init; }

    public string? OutDirectory { get; private init; }

    /// <summary>The command line as typed, for the report.</summary>
    public string CommandLine { get; private init; } = "";

    public bool Includes(string scenario) => Only.Contains(scenario);

    /// <summary>Parses the arguments after <c>compare</c>; throws <see cref="ArgumentException"/> with one clear line.</summary>
    public static CompareOptions Parse(IReadOnlyList<string> args)
    {
        var quick = false;
        var writeDocs = false;
        var help = false;
        int? runs = null;
        string? vipd = null;
        string? outDir = null;
        HashSet<string>? only = null;
        for (var i = 0; i < args.Count; i++)
        {
            switch (args[i])
            {
                case "--quick":
                    quick = true;
                    break;
                case "--write-docs":
                    writeDocs = true;
                    break;
                case "-h" or "--help":
                    help = true;
                    break;
                case "--runs":
                    var text = Value(args, ref i);
                    if (!int.TryParse(text, out var n) || n is < 1 or > 15)
                    {
                        throw new ArgumentException($"--runs takes a number from 1 to 15, not '{text}'");
                    }

                    runs = n;
                    break;
                case "--only":
                    only = new HashSet<string>(StringComparer.Ordinal);
                    foreach (var key in Value(args, ref i).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    {
                        if (!ScenarioKeys.Contains(key))
                        {
                            throw new ArgumentException($"unknown scenario '{key}' (known: {string.Join(',', ScenarioKeys)})");
                        }

                        only.Add(key);
                    }

                    break;
                case "--vipd":
                    vipd = Value(args, ref i);
                    break;
                case "--out":
                    outDir = Value(args, ref i);
                    break;
                default:
                    throw new ArgumentException($"unknown switch '{args[i]}'");
            }
        }

        return new CompareOptions
        {
            Quick = quick,
            Runs = runs ?? (quick ? 3 : 5),
            Only = only ?? new HashSet<string>(ScenarioKeys, StringComparer.Ordinal),
            WriteDocs = writeDocs,
            Help = help,
            VipdPath = vipd,
            OutDirectory = outDir,
            CommandLine = "dotnet run -c Release --project Vip.Benchmarks -- compare" + (args.Count > 0 ? " " + string.Join(' ', args) : ""),
        };
    }

    private static string Value(IReadOnlyList<string> args, ref int i)
    {
        if (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
        {
            throw new ArgumentException($"{args[i]} needs a value");
        }

        return args[++i];
    }
}
