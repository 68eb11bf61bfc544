namespace Serving.Engine.Constraints;

/// <summary>
/// A piece of a <see cref="ByteNfa"/> with one entry and one exit state: the strings that lead from
/// <see cref="Start"/> to <see cref="End"/>. <see cref="Never"/> is the empty language (no string at all), which
/// sequences absorb and alternations drop, so an unsatisfiable branch (a recursive <c>$ref</c> past its depth) vanishes.
/// </summary>
internal readonly record struct NfaFragment(int Start, int End)
{
    public static NfaFragment Never { get; } = new(-1, -1);

    public bool IsNever => Start < 0;
}
