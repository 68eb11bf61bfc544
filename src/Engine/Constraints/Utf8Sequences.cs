namespace Serving.Engine.Constraints;

/// <summary>
/// Turns a range of Unicode scalar values into the byte-range sequences that encode exactly that range in UTF-8, so a
/// byte automaton accepts the characters and nothing else (no overlong forms, no surrogates). Each sequence is one to four
/// (lo, hi) byte ranges, one per encoded byte; their union over the result is the range's encodings. The split is RE2's:
/// cut at the encoded-length boundaries, then wherever lo and hi differ in a prefix but not every continuation byte spans
/// its full 0x80–0xBF range.
/// </summary>
internal static class Utf8Sequences
{
    public static List<(byte Lo, byte Hi)[]> Of(int lo, int hi)
    {
        var result = new List<(byte, byte)[]>();
        Split(lo, hi, result);
        return result;
    }

    private static void Split(int lo, int hi, List<(byte, byte)[]> result)
    {
        if (lo > hi)
            return;
        if (lo <= 0xDFFF && hi >= 0xD800)
        {
            Split(lo, Math.Min(hi, 0xD7FF), result);
            Split(Math.Max(lo, 0xE000), hi, result);
            return;
        }

        foreach (int max in (ReadOnlySpan<int>)[0x7F, 0x7FF, 0xFFFF])
        {
            if (lo <= max && hi > max)
            {
                Split(lo, max, result);
                Split(max + 1, hi, result);
                return;
            }
        }

        if (hi <= 0x7F)
        {
            result.Add([((byte)lo, (byte)hi)]);
            return;
        }

        int length = Length(lo);
        for (int i = 1; i < length; i++)
        {
            int m = (1 << (6 * i)) - 1;
            if ((lo & ~m) != (hi & ~m))
            {
                if ((lo & m) != 0)
                {
                    Split(lo, lo | m, result);
                    Split((lo | m) + 1, hi, result);
                    return;
                }

                if ((hi & m) != m)
                {
                    Split(lo, (hi & ~m) - 1, result);
                    Split(hi & ~m, hi, result);
                    return;
                }
            }
        }

        var a = Encode(lo);
        var b = Encode(hi);
        var sequence = new (byte, byte)[a.Length];
        for (int i = 0; i < a.Length; i++)
            sequence[i] = (a[i], b[i]);
        result.Add(sequence);
    }

    private static int Length(int c) => c <= 0x7F ? 1 : c <= 0x7FF ? 2 : c <= 0xFFFF ? 3 : 4;

    private static byte[] Encode(int c) => System.Text.Encoding.UTF8.GetBytes(char.ConvertFromUtf32(c));
}
