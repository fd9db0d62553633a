using BenchmarkDotNet.Running;

// BenchmarkDotNet's switcher: pick benchmarks with --filter, a job with --job (see docs/benchmarks.md).
BenchmarkSwitcher.FromAssembly(typeof(Converge.MicroBenchmarks.MergeBenchmarks).Assembly).Run(args);
