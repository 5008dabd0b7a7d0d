using BenchmarkDotNet.Running;
using Vip.Benchmarks.Compare;

// `dotnet run -c Release --project Vip.Benchmarks -- --filter '*'` runs the micro benchmarks (BenchmarkDotNet);
// `-- compare [--quick] [--runs N] [--only bulk,rr,churn,udp,memory,chain] [--write-docs]` runs the side-by-side
// harness against HAProxy, nginx and direct connections (see docs/benchmarks.md).
if (args.Length > 0 && args[0] == "compare")
{
    return await CompareCommand.RunAsync(args[1..]);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
