namespace Serving.Engine.Tests.Generation;

/// <summary>Runs alone (no other test allocating in parallel) so the process working set is a fair signal.</summary>
[CollectionDefinition(nameof(GenerationMemoryTests), DisableParallelization = true)]
public sealed class GenerationMemoryCollection;
