using Serving.Contracts.Generation;
using Serving.Runtime.Hosting;
using Serving.Server.Api;

namespace Serving.Server.Requests;

/// <summary>
/// vLLM's <c>bad_words</c> as the token sequences its bad-words processor bans: each word tokenized without special
/// tokens, both as written (leading whitespace removed) and after a space — the form it takes inside a text — when that
/// gives a different first token and as many tokens. The engine then never generates a sequence's last token right
/// after the output ends with the ones before it.
/// </summary>
internal static class BadWordsReader
{
    /// <summary>Words a request may list.</summary>
    public const int MaxWords = 256;

    private const string Field = "bad_words";

    /// <summary>The body's <c>bad_words</c> (a string or a list of strings; absent: none).</summary>
    public static IReadOnlyList<IReadOnlyList<int>> Read(JsonFields f, ServedModel model) => Tokenize(f.StringOrList(Field, MaxWords), model);

    /// <summary>The words' token sequences; a 400 naming <c>bad_words</c> for an empty word or past the token bound.</summary>
    public static IReadOnlyList<IReadOnlyList<int>> Tokenize(IReadOnlyList<string> words, ServedModel model)
    {
        if (words.Count > MaxWords)
            throw JsonFields.Bad(Field, $"may hold at most {MaxWords} words");
        var sequences = new List<IReadOnlyList<int>>();
        int total = 0;
        foreach (string word in words)
        {
            string bare = word.TrimStart();
            if (bare.Length == 0)
                throw JsonFields.Bad(Field, "must not hold an empty or blank word");
            if (bare.Length > SamplingParams.MaxBadWordTokens)
                throw JsonFields.Bad(Field, $"holds a word of {bare.Length} characters; the words may be at most {SamplingParams.MaxBadWordTokens} tokens in all");
            int[] alone = Encode(model, bare);
            int[] inText = Encode(model, " " + bare);
            sequences.Add(alone);
            total += alone.Length;
            if (inText.Length == alone.Length && inText[0] != alone[0])
            {
                sequences.Add(inText);
                total += inText.Length;
            }

            if (total > SamplingParams.MaxBadWordTokens)
                throw JsonFields.Bad(Field, $"may be at most {SamplingParams.MaxBadWordTokens} tokens in all");
        }

        return sequences;
    }

    private static int[] Encode(ServedModel model, string text)
    {
        try
        {
            return model.EncodeWithin(text, addSpecialTokens: false, SamplingParams.MaxBadWordTokens) is { Length: > 0 } ids ? ids
                : throw JsonFields.Bad(Field, $"holds a word that is not one to {SamplingParams.MaxBadWordTokens} tokens");
        }
        catch (PromptTextException ex)
        {
            throw ApiException.BadRequest($"'{Field}': {ex.Message}", Field);
        }
    }
}
