using System.Text;
using Serving.Contracts.Generation;
using Serving.Engine.Constraints;
using Serving.Engine.Tests.Support;
using Serving.Engine.Tokenization;
using Serving.Tests.Shared;

namespace Serving.Engine.Tests.Constraints;

/// <summary>
/// A Llama-2-style vocabulary: '▁' pieces stand for a leading space, &lt;0xXX&gt; pieces for single bytes (so a character
/// outside the pieces is spelled byte by byte). The automaton must see exactly the bytes the detokenizer emits.
/// </summary>
public sealed class SentencePieceConstraintTests : IDisposable
{
    private readonly string _dir = TestDirectories.Create("sp-constraint");
    private readonly HfTokenizer _tokenizer;

    public SentencePieceConstraintTests()
    {
        TinySentencePiece.Write(_dir);
        _tokenizer = HfTokenizer.Load(_dir);
    }

    private int Id(string piece) => _tokenizer.TokenToId(piece) ?? throw new ArgumentException(piece);

    [Fact]
    public void AllowedTokens_LeadingSpacePieces_AllowedOnlyWhereASpaceIs()
    {
        var constraint = new TokenConstraintCompiler(_tokenizer, _tokenizer.VocabSize).Compile(OutputConstraint.Regex("hello world"));
        var start = ConstraintWalker.Ids(constraint.AllowedTokens(constraint.Start));
        Assert.Contains(Id("hello"), start);
        Assert.DoesNotContain(Id("▁hello"), start);
        int afterHello = constraint.Advance(constraint.Start, Id("hello"));
        var next = ConstraintWalker.Ids(constraint.AllowedTokens(afterHello));
        Assert.Contains(Id("▁world"), next);
        Assert.Contains(Id("▁"), next);
        Assert.Contains(Id("<0x20>"), next);                               // the space as a byte-fallback piece
        Assert.DoesNotContain(Id("▁hello"), next);
        Assert.True(constraint.IsAccepting(constraint.Advance(afterHello, Id("▁world"))));
    }

    [Fact]
    public void Walk_MultiByteCharactersThroughByteFallback_OutputIsExactUtf8()
    {
        var constraint = new TokenConstraintCompiler(_tokenizer, _tokenizer.VocabSize).Compile(OutputConstraint.Regex("(héllo|wörld|日本){1,3}"));
        var random = new Random(11);
        for (int i = 0; i < 30; i++)
        {
            var (output, complete) = ConstraintWalker.Walk(constraint, _tokenizer, random);
            Assert.True(complete);
            string text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(output);
            Assert.Matches("^(héllo|wörld|日本){1,3}$", text);
        }

        // A character outside the pieces starts with its lead byte: only the byte piece can begin it.
        int afterH = constraint.Advance(constraint.Start, Id("h"));
        Assert.Equal([Id("<0xC3>")], ConstraintWalker.Ids(constraint.AllowedTokens(afterH)));
    }

    public void Dispose() => TestDirectories.Delete(_dir);
}
