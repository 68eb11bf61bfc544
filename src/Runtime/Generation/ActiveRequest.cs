using Serving.Engine.Generation;

namespace Serving.Runtime.Generation;

/// <summary>The engine-side half of a scheduled request: where its tokens go and its sequence (tokens, sampling, KV).</summary>
internal sealed record ActiveRequest(GenerationCommand Command, SequenceState State);
