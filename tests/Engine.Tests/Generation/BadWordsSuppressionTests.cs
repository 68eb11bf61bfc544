using Serving.Contracts.Generation;
using Serving.Engine.Generation;
using Serving.Engine.Sampling;
using Serving.Engine.Tests.Support;

namespace Serving.Engine.Tests.Generation;

/// <summary>
/// <see cref="SamplingParams.BadWords"/> as vLLM's bad-words processor: a one-token word is never chosen, and a longer
/// word's last token only right after the output ends with the rest of it (the prompt does not count).
/// </summary>
public sealed class BadWordsSuppressionTests(Gpt2TokenizerFixture gpt2) : IClassFixture<Gpt2TokenizerFixture>
{
    private SequenceState Sequence(int[] prompt, SamplingParams sampling) => new(prompt, sampling with { MaxTokens = 50 }, gpt2.Tokenizer, [50256]);

    [Fact]
    public void SuppressedTokens_OutputEndingWithAllButTheLastTokenOfAWord_ThatLastTokenAndOneTokenWords()
    {
        var sequence = Sequence([7, 8], new SamplingParams { BadWords = [[5], [7, 8, 9], [8, 10]] });

        Assert.Equal(new HashSet<int> { 5 }, sequence.SuppressedTokens(null).ToHashSet());   // the prompt ends with 7, 8: not counted
        sequence.Accept(new SampledToken(7, 0f, []), 100);
        Assert.Equal(new HashSet<int> { 5 }, sequence.SuppressedTokens(null).ToHashSet());
        sequence.Accept(new SampledToken(8, 0f, []), 100);
        Assert.Equal(new HashSet<int> { 5, 9, 10 }, sequence.SuppressedTokens(null).ToHashSet());
        sequence.Accept(new SampledToken(1, 0f, []), 100);
        Assert.Equal(new HashSet<int> { 5 }, sequence.SuppressedTokens(null).ToHashSet());
    }

    [Fact]
    public void SuppressedTokens_BadWordsBeforeMinTokens_StopTokensSuppressedToo()
    {
        var sequence = Sequence([1], new SamplingParams { BadWords = [[3]], MinTokens = 2 });

        Assert.Equal(new HashSet<int> { 3, 50256 }, sequence.SuppressedTokens(null).ToHashSet());
        Assert.True(sequence.Sampling.AdjustsLogits);
    }

    [Fact]
    public void Validate_EmptyWordOrPastTheTokenBound_Throws()
    {
        Assert.Throws<ArgumentException>(() => new SamplingParams { BadWords = [[]] }.Validate());
        Assert.Throws<ArgumentException>(() => new SamplingParams { BadWords = [[-1]] }.Validate());
        Assert.Throws<ArgumentException>(() => new SamplingParams { BadWords = [.. Enumerable.Range(0, 4097).Select(i => (IReadOnlyList<int>)[i])] }.Validate());
    }
}
