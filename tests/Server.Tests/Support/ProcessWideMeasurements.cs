namespace Serving.Server.Tests.Support;

/// <summary>
/// Tests that measure the whole test process (its managed heap) run alone: xUnit runs this collection after the
/// parallel ones, so other tests' allocations do not count against them.
/// </summary>
[CollectionDefinition(nameof(ProcessWideMeasurements), DisableParallelization = true)]
public sealed class ProcessWideMeasurements;
