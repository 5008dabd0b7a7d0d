using BenchmarkDotNet.Running;
using Vip.Benchmarks.Compare;

// `dotnet run -c Release --project Vip.Benchmarks -- --filter '*'` runs the micro benchmarks (BenchmarkDotNet);
// `-- compare [--quick] [--runs N] [--only bulk,rr,churn,udp,memory,chain] [--write-docs]` runs the side-by-side
// harness against HAProxy, nginx and direct connections (see docs/benchmarks.md).
if (args.Length > 0 && args[0] == "compare")
{
    return await CompareCommand.RunAsync(args[1..]);
}

// `-- selection-heartbeats` and `-- store-restart`: bounded measuring programs of the selection and store areas.
if (args.Length > 0 && args[0] == "selection-heartbeats")
{
    return Vip.Benchmarks.Selection.HeartbeatLoadCommand.Run(args[1..]);
}

if (args.Length > 0 && args[0] == "store-restart")
{
    return Vip.Benchmarks.Store.RestartCommand.Run(args[1..]);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
