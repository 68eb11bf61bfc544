using System.Text;

namespace Serving.Engine.Tokenization;

/// <summary>
/// Turns a stream of token ids into text without ever emitting a broken UTF-8 sequence: bytes of a character that
/// is split across tokens are held back until the character is complete. Invalid bytes become U+FFFD.
/// </summary>
/// <param name="tokenizer">The model's tokenizer.</param>
/// <param name="skipSpecialTokens">Whether special tokens add nothing to the text (else their text, as the decoder gives it).</param>
internal sealed class IncrementalDetokenizer(HfTokenizer tokenizer, bool skipSpecialTokens = true)
{
    private readonly List<byte> _pending = [];

    /// <summary>Adds one token; returns the text that became complete (possibly empty).</summary>
    public string Push(int tokenId)
    {
        var bytes = tokenizer.TokenBytes(tokenId, skipSpecialTokens);
        if (bytes is null || bytes.Length == 0)
            return "";
        _pending.AddRange(bytes);
        int complete = CompletePrefixLength(_pending);
        if (complete == 0)
            return "";
        string text = Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_pending)[..complete]);
        _pending.RemoveRange(0, complete);
        return text;
    }

    /// <summary>Emits whatever is held back (an unfinished character becomes U+FFFD).</summary>
    public string Flush()
    {
        string text = Encoding.UTF8.GetString(_pending.ToArray());
        _pending.Clear();
        return text;
    }

    /// <summary>Length of the longest prefix that does not end inside a possibly-still-valid multi-byte sequence.</summary>
    internal static int CompletePrefixLength(IReadOnlyList<byte> bytes)
    {
        int n = bytes.Count;
        for (int back = 1; back <= Math.Min(3, n); back++)
        {
            byte b = bytes[n - back];
            if ((b & 0xC0) == 0x80)
                continue;    // continuation byte: keep looking for the lead byte
            int needed = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 ? 2 : 1;
            return needed > back ? n - back : n;
        }

        return n;
    }
}
