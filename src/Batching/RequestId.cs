namespace Serving.Batching;

/// <summary>Identifies one generation request inside the scheduler, unique for the process's lifetime.</summary>
internal readonly record struct RequestId(long Value)
{
    public override string ToString() => $"req-{Value}";
}
