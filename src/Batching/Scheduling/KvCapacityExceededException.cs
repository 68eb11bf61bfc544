namespace Serving.Batching.Scheduling;

/// <summary>A sequence needs more KV memory than the whole cache holds, so it can never run (the caller answers 400).</summary>
internal sealed class KvCapacityExceededException(string message) : Exception(message);
