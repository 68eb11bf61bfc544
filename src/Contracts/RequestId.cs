namespace Serving.Contracts;

/// <summary>Identifies one generation request inside the scheduler, unique for the process's lifetime.</summary>
public readonly record struct RequestId(long Value)
{
    public override string ToString() => $"req-{Value}";
}
