using Microsoft.Extensions.Options;
using Serving.Contracts.Generation;
using Serving.Engine.Sampling;
using Serving.Runtime.Hosting;

namespace Serving.Runtime.Generation;

/// <summary>
/// The seeds of requests that name none, when the server was started with <c>--seed</c> (<see cref="ModelOptions.Seed"/>):
/// each takes the next value of one generator in the order requests reach the runtime. Without it a request keeps no
/// seed and its sequence draws from the OS's entropy.
/// </summary>
public sealed class RequestSeeds(IOptions<ModelOptions> options)
{
    private readonly SeededRandom? _generator = options.Value.Seed is long seed ? new SeededRandom(unchecked((ulong)seed)) : null;
    private readonly Lock _lock = new();

    /// <summary><paramref name="sampling"/> with a seed: its own, else the generator's next when there is one.</summary>
    public SamplingParams Complete(SamplingParams sampling)
    {
        if (sampling.Seed is not null || _generator is null)
            return sampling;
        lock (_lock)
            return sampling with { Seed = _generator.NextUInt64() };
    }
}
