using BenchmarkDotNet.Running;

// `dotnet run -c Release --project Vip.Benchmarks -- --filter '*'` runs the micro benchmarks;
// `-- compare` runs the side-by-side harness against HAProxy and direct connections.
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
