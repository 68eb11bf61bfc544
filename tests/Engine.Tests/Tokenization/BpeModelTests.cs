using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization;

/// <summary>
/// <see cref="BpeModel.Merge"/> (heap of packed candidates, hashed merge table) against the definition: repeatedly merge
/// the leftmost of the lowest-ranked adjacent pairs until no pair has a merge.
/// </summary>
public sealed class BpeModelTests
{
    [Fact]
    public void Merge_RandomVocabularyAndWords_MatchesTheNaiveDefinition()
    {
        var random = new Random(25);
        for (int trial = 0; trial < 40; trial++)
        {
            string alphabet = "abcd";
            var vocab = new Dictionary<string, int>();
            foreach (char c in alphabet)
                vocab[c.ToString()] = vocab.Count;
            var merges = new List<(string, string)>();
            for (int m = 0; m < 60; m++)
            {
                var tokens = vocab.Keys.ToList();
                string left = tokens[random.Next(tokens.Count)], right = tokens[random.Next(tokens.Count)];
                if (left.Length + right.Length > 8)
                    continue;
                merges.Add((left, right));
                vocab.TryAdd(left + right, vocab.Count);
            }

            var model = new BpeModel(vocab, merges);
            for (int w = 0; w < 20; w++)
            {
                var word = Enumerable.Range(0, random.Next(1, 200)).Select(_ => vocab[alphabet[random.Next(alphabet.Length)].ToString()]).ToList();
                Assert.Equal(NaiveMerge(vocab, merges, word), model.Merge(word));
            }
        }
    }

    [Fact]
    public void Merge_SamePairListedTwice_FirstRankWins()
    {
        var vocab = new Dictionary<string, int> { ["a"] = 0, ["b"] = 1, ["c"] = 2, ["ab"] = 3, ["bc"] = 4 };
        // "b c" first at rank 0, "a b" at rank 1, "b c" again at rank 2: the pair keeps rank 0, so "bc" forms first.
        var model = new BpeModel(vocab, [("b", "c"), ("a", "b"), ("b", "c")]);

        Assert.Equal([0, 4], model.Merge([0, 1, 2]));
    }

    [Fact]
    public void Merge_MergeWhoseResultIsNotInTheVocabulary_IsIgnored()
    {
        var vocab = new Dictionary<string, int> { ["a"] = 0, ["b"] = 1 };
        var model = new BpeModel(vocab, [("a", "b")]);

        Assert.Equal([0, 1], model.Merge([0, 1]));
    }

    [Fact]
    public void TryPop_RandomKeys_ComeOutInAscendingOrder()
    {
        var random = new Random(7);
        var keys = Enumerable.Range(0, 5000).Select(_ => random.NextInt64(-1_000_000, 1_000_000)).ToList();
        var heap = new LongMinHeap(1);
        foreach (long key in keys)
            heap.Push(key);

        var popped = new List<long>();
        while (heap.TryPop(out long key))
            popped.Add(key);

        keys.Sort();
        Assert.Equal(keys, popped);
    }

    private static int[] NaiveMerge(Dictionary<string, int> vocab, List<(string Left, string Right)> merges, List<int> word)
    {
        var ranks = new Dictionary<(int, int), int>();
        for (int r = 0; r < merges.Count; r++)
            if (vocab.TryGetValue(merges[r].Left + merges[r].Right, out _))
                ranks.TryAdd((vocab[merges[r].Left], vocab[merges[r].Right]), r);
        var names = vocab.ToDictionary(kv => kv.Value, kv => kv.Key);
        var symbols = word.ToList();
        while (true)
        {
            int best = -1, bestRank = int.MaxValue;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (ranks.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank < bestRank)
                    (best, bestRank) = (i, rank);
            if (best < 0)
                return symbols.ToArray();
            symbols[best] = vocab[names[symbols[best]] + names[symbols[best + 1]]];
            symbols.RemoveAt(best + 1);
        }
    }
}
