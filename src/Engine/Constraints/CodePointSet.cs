namespace Serving.Engine.Constraints;

/// <summary>
/// A set of Unicode scalar values as sorted, disjoint, non-adjacent inclusive ranges. Surrogates (U+D800–U+DFFF) are never
/// members: they cannot be encoded in UTF-8, so a class or complement never yields them.
/// </summary>
internal sealed class CodePointSet
{
    public const int MaxCodePoint = 0x10FFFF;

    private readonly (int Lo, int Hi)[] _ranges;

    private CodePointSet((int Lo, int Hi)[] ranges) => _ranges = ranges;

    public IReadOnlyList<(int Lo, int Hi)> Ranges => _ranges;
    public bool IsEmpty => _ranges.Length == 0;

    public static CodePointSet Empty { get; } = new([]);
    public static CodePointSet All { get; } = Range(0, MaxCodePoint);

    public static CodePointSet Single(int c) => Range(c, c);

    public static CodePointSet Range(int lo, int hi) => Of([(lo, hi)]);

    /// <summary>The union of <paramref name="ranges"/> (any order, overlapping allowed), surrogates removed.</summary>
    public static CodePointSet Of(IEnumerable<(int Lo, int Hi)> ranges)
    {
        var sorted = ranges.Where(r => r.Lo <= r.Hi).Select(r => (Math.Max(0, r.Lo), Math.Min(MaxCodePoint, r.Hi))).OrderBy(r => r.Item1).ToList();
        var merged = new List<(int Lo, int Hi)>();
        foreach (var (lo, hi) in sorted)
        {
            if (merged.Count > 0 && lo <= merged[^1].Hi + 1)
                merged[^1] = (merged[^1].Lo, Math.Max(merged[^1].Hi, hi));
            else
                merged.Add((lo, hi));
        }

        var result = new List<(int, int)>();
        foreach (var (lo, hi) in merged)
        {
            if (hi < 0xD800 || lo > 0xDFFF)
                result.Add((lo, hi));
            else
            {
                if (lo < 0xD800)
                    result.Add((lo, 0xD7FF));
                if (hi > 0xDFFF)
                    result.Add((0xE000, hi));
            }
        }

        return new CodePointSet([.. result]);
    }

    public CodePointSet Union(CodePointSet other) => Of(_ranges.Concat(other._ranges));

    /// <summary>Every scalar value not in this set.</summary>
    public CodePointSet Complement()
    {
        var result = new List<(int, int)>();
        int next = 0;
        foreach (var (lo, hi) in _ranges)
        {
            if (lo > next)
                result.Add((next, lo - 1));
            next = hi + 1;
        }

        if (next <= MaxCodePoint)
            result.Add((next, MaxCodePoint));
        return Of(result);
    }

    public CodePointSet Except(CodePointSet other) => Complement().Union(other).Complement();

    public CodePointSet Intersect(CodePointSet other) => Complement().Union(other.Complement()).Complement();

    public bool Contains(int c) => _ranges.Any(r => r.Lo <= c && c <= r.Hi);
}
