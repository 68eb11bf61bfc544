using Serving.Engine.Constraints;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Constraints;

/// <summary>
/// Drives a <see cref="TokenConstraint"/> as a sampler would, with a random model: each step picks uniformly among the
/// allowed tokens (or ends, when the output is complete), so walks reach states a real model rarely would.
/// </summary>
internal static class ConstraintWalker
{
    /// <summary>The output bytes of one walk, and whether it ended complete.</summary>
    public static (byte[] Output, bool Complete) Walk(TokenConstraint constraint, HfTokenizer tokenizer, Random random, int maxTokens = 4000, double endChance = 0.3)
    {
        var output = new List<byte>();
        int state = constraint.Start;
        for (int step = 0; step < maxTokens; step++)
        {
            bool accepting = constraint.IsAccepting(state);
            if (accepting && (!constraint.CanContinue(state) || random.NextDouble() < endChance))
                return ([.. output], true);
            var allowed = Ids(constraint.AllowedTokens(state));
            Assert.True(allowed.Count > 0, $"no token can continue '{System.Text.Encoding.UTF8.GetString([.. output])}'");
            int token = allowed[random.Next(allowed.Count)];
            int next = constraint.Advance(state, token);
            Assert.NotEqual(TokenConstraint.Dead, next);
            output.AddRange(tokenizer.TokenBytes(token)!);
            state = next;
        }

        return ([.. output], false);
    }

    public static List<int> Ids(ulong[] mask)
    {
        var ids = new List<int>();
        for (int w = 0; w < mask.Length; w++)
            for (ulong bits = mask[w]; bits != 0; bits &= bits - 1)
                ids.Add(w * 64 + System.Numerics.BitOperations.TrailingZeroCount(bits));
        return ids;
    }
}
