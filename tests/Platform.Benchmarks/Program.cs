using Platform.Benchmarks;

if (args.Length == 0 || !Benchmarks.All.TryGetValue(args[0], out var benchmark))
{
    Console.Error.WriteLine($"usage: Platform.Benchmarks <{string.Join('|', Benchmarks.All.Keys)}>");
    return 2;
}

await benchmark(args[1..]);
return 0;
