using SharpFuzz;
using Vip.Fuzz;

// Vip.Fuzz TARGET                 under fuzz/run.sh's libFuzzer driver: runs TARGET on every input it is sent
// Vip.Fuzz TARGET PATH...         replays files (or every file in directories) through TARGET and tallies outcomes
// Vip.Fuzz seed DIR               writes the seed corpora to DIR/<target>/
if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.Error.WriteLine($"usage: Vip.Fuzz <{string.Join('|', FuzzTargets.Names)}> [file|dir]...  |  Vip.Fuzz seed <dir>");
    return 2;
}

if (args[0] == "seed")
{
    Seeds.WriteAll(args.Length > 1 ? args[1] : "corpus");
    return 0;
}

var target = args[0];
if (!FuzzTargets.Names.Contains(target))
{
    Console.Error.WriteLine($"unknown target '{target}' (known: {string.Join(", ", FuzzTargets.Names)})");
    return 2;
}

if (Environment.GetEnvironmentVariable("__LIBFUZZER_SHM_ID") is not null)
{
    // Any exception escaping the action is reported to libFuzzer as a crash (and printed by SharpFuzz).
    Fuzzer.LibFuzzer.Run(span => FuzzTargets.Run(target, span));
    return 0;
}

var files = args.Skip(1).SelectMany(p => Directory.Exists(p) ? Directory.EnumerateFiles(p, "*", SearchOption.AllDirectories) : [p]).Order().ToList();
if (files.Count == 0)
{
    Console.Error.WriteLine("give files or directories to replay");
    return 2;
}

var tally = new Dictionary<FuzzOutcome, int>();
var failures = 0;
foreach (var file in files)
{
    try
    {
        var outcome = FuzzTargets.Run(target, File.ReadAllBytes(file));
        tally[outcome] = tally.GetValueOrDefault(outcome) + 1;
    }
    catch (Exception ex) when (ex is not OutOfMemoryException)
    {
        failures++;
        Console.Error.WriteLine($"{file}: {ex}");
    }
}

Console.WriteLine($"{target}: {files.Count} inputs, {string.Join(", ", tally.OrderBy(t => t.Key).Select(t => $"{t.Value} {t.Key}"))}, {failures} failed");
return failures == 0 ? 0 : 1;
