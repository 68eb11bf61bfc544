namespace Serving.Engine.Runtime;

/// <summary>
/// Scratch arrays kept from one step to the next: grown to at least twice their length when too short, never shrunk,
/// so that a buffer sized by a context that grows by one token a step is reallocated a logarithmic number of times in
/// the context's life instead of once a step.
/// </summary>
internal static class ScratchArrays
{
    /// <summary>The first <paramref name="length"/> elements of <paramref name="array"/>, after growing it if it is shorter.</summary>
    public static T[] Fit<T>(ref T[]? array, int length)
    {
        if (array is null || array.Length < length)
            array = new T[Math.Max(length, 2 * (array?.Length ?? 0))];
        return array;
    }
}
