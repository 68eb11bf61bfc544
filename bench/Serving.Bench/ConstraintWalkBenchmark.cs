using System.Diagnostics;
using Serving.Contracts.Generation;
using Serving.Engine.Constraints;
using Serving.Engine.Tokenization;

namespace Serving.Bench;

/// <summary>
/// What recursion costs a token mask. Seeded random walks, as a sampler with a uniform model would make them, through
/// four constraints against the bench preset's vocabulary: <c>json_object</c> (any JSON, values nested in values), a
/// recursive tree schema (<c>$ref</c> to itself), an arithmetic grammar (parentheses in expressions) and the
/// non-recursive clinical-record schema (the regular case, for comparison across builds). Each step asks for the state's
/// mask (a vocabulary walk when the state is new, a lookup after) and advances by a uniformly chosen allowed token; a
/// complete output ends with probability 0.1 per step. Reports per-step mask time, how many steps met a new state, the
/// automaton's size and memory, and the deepest nesting the outputs reached (a bounded unrolling caps it). Then a text
/// nested <see cref="DeepLevels"/> levels deep is written through each recursive constraint as a model would (each step
/// the allowed token spelling most of what remains): how far the mask lets it go, and what its masks cost, new and cached.
/// </summary>
internal sealed class ConstraintWalkBenchmark(string modelDir, int walks, int tokens)
{
    private const string Tree = """
        {"$defs":{"node":{"type":"object","properties":{"label":{"type":"string","maxLength":12},"children":{"type":"array","items":{"$ref":"#/$defs/node"}}},
          "required":["label"]}},
         "$ref":"#/$defs/node"}
        """;

    private const string Arithmetic = """
        root ::= expr
        expr ::= term (("+" | "-") term)*
        term ::= factor ("*" factor)*
        factor ::= [0-9]{1,3} | "(" expr ")"
        """;

    private const int DeepLevels = 32;

    private static string Repeat(string text, int times) => string.Concat(Enumerable.Repeat(text, times));

    /// <summary>Texts nested <see cref="DeepLevels"/> deep, one per constraint (null: not recursive).</summary>
    private static readonly string?[] DeepTexts =
    [
        Repeat("{\"a\":", DeepLevels) + "1" + new string('}', DeepLevels),
        Repeat("{\"label\":\"x\",\"children\":[", DeepLevels) + "{\"label\":\"leaf\"}" + Repeat("]}", DeepLevels),
        new string('(', DeepLevels) + "1+2*3" + new string(')', DeepLevels),
        null,
    ];

    public BenchReport Run()
    {
        var tokenizer = HfTokenizer.Load(modelDir);
        var constraints = new (string Name, OutputConstraint Constraint)[]
        {
            ("json_object", OutputConstraint.JsonObject()),
            ("tree schema", OutputConstraint.JsonSchema(Tree)),
            ("arithmetic grammar", OutputConstraint.Grammar(Arithmetic)),
            ("clinical schema", OutputConstraint.JsonSchema(Serving.Tests.Shared.ExtractionSchemas.Valid.Single(s => s.Name == "clinical_record").Schema)),
        };
        var report = new BenchReport($"Constraint walks: {walks} seeded uniform walks of ≤ {tokens} tokens each, {tokenizer.VocabSize:N0}-token vocabulary",
            [.. constraints.Select(c => c.Name)]);
        report.Context("walks", walks);
        report.Context("tokens", tokens);
        var results = constraints.Select(c => Walk(tokenizer, c.Constraint)).ToArray();
        report.Add("compile (cold)", "ms", [.. results.Select(r => (double?)r.CompileMs)]);
        report.Add("mask per step, mean (new states walk the vocabulary)", "ms", [.. results.Select(r => (double?)r.MaskMs.Average())]);
        report.Add("mask per step, p99", "ms", [.. results.Select(r => (double?)Stats.Percentile(r.MaskMs, 0.99))]);
        report.Add("steps that met a state without a mask", "%", [.. results.Select(r => (double?)(100.0 * r.NewMasks / r.MaskMs.Count))]);
        report.Add("steps", "", [.. results.Select(r => (double?)r.MaskMs.Count)]);
        report.Add("walks that ended complete", "%", [.. results.Select(r => (double?)(100.0 * r.Complete / walks))]);
        report.Add("deepest nesting in an output", "levels", [.. results.Select(r => (double?)r.Deepest)]);
        report.Add("constraint memory after the walks", "MB", [.. results.Select(r => (double?)(r.Bytes / 1e6))]);
        var deep = constraints.Select((c, i) => DeepTexts[i] is { } text ? Write(tokenizer, c.Constraint, text) : null).ToArray();
        report.Add($"{DeepLevels}-level text: share written before the mask stopped it", "%", [.. deep.Select(d => d?.WrittenPercent)]);
        report.Add($"{DeepLevels}-level text: tokens", "", [.. deep.Select(d => (double?)d?.Tokens)]);
        report.Add($"{DeepLevels}-level text: mask per token, new automaton", "ms", [.. deep.Select(d => d?.FirstMs)]);
        report.Add($"{DeepLevels}-level text: mask per token, written again", "ms", [.. deep.Select(d => d?.AgainMs)]);
        return report;
    }

    private sealed record Result(double CompileMs, List<double> MaskMs, int NewMasks, int Complete, int Deepest, long Bytes);

    private Result Walk(HfTokenizer tokenizer, OutputConstraint constraint)
    {
        var compiler = new TokenConstraintCompiler(tokenizer, tokenizer.VocabSize);
        compiler.Compile(OutputConstraint.Regex("x"));                                         // the vocabulary trie, apart
        var clock = Stopwatch.StartNew();
        var compiled = compiler.Compile(constraint);
        double compileMs = clock.Elapsed.TotalMilliseconds;
        var random = new Random(17);
        var maskMs = new List<double>();
        int newMasks = 0, complete = 0, deepest = 0;
        for (int w = 0; w < walks; w++)
        {
            int state = compiled.Start, depth = 0;
            bool inString = false, escaped = false;
            for (int step = 0; step < tokens; step++)
            {
                if (compiled.IsAccepting(state) && (!compiled.CanContinue(state) || random.NextDouble() < 0.1))
                {
                    complete++;
                    break;
                }

                bool cached = compiled.HasMask(state);
                clock.Restart();
                var mask = compiled.AllowedTokens(state);
                maskMs.Add(clock.Elapsed.TotalMilliseconds);
                newMasks += cached ? 0 : 1;
                int token = Pick(mask, random);
                if (token < 0)
                    break;
                state = compiled.Advance(state, token);
                foreach (byte b in tokenizer.TokenBytes(token) ?? [])
                {
                    (depth, inString, escaped) = Track(b, depth, inString, escaped);
                    deepest = Math.Max(deepest, depth);
                }
            }
        }

        return new Result(compileMs, maskMs, newMasks, complete, deepest, compiled.Bytes);
    }

    private sealed record Written(double WrittenPercent, int Tokens, double FirstMs, double AgainMs);

    /// <summary><paramref name="text"/> through a new compile of the constraint, twice: the second pass meets cached masks.</summary>
    private static Written Write(HfTokenizer tokenizer, OutputConstraint constraint, string text)
    {
        var compiled = new TokenConstraintCompiler(tokenizer, tokenizer.VocabSize).Compile(constraint);
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        (int Written, int Tokens, double Ms) Pass()
        {
            int state = compiled.Start, at = 0, steps = 0;
            var clock = new Stopwatch();
            while (at < bytes.Length)
            {
                clock.Start();
                var mask = compiled.AllowedTokens(state);
                clock.Stop();
                int best = -1, bestLength = 0;
                for (int w = 0; w < mask.Length; w++)
                    for (ulong word = mask[w]; word != 0; word &= word - 1)
                    {
                        int id = w * 64 + System.Numerics.BitOperations.TrailingZeroCount(word);
                        var spelled = tokenizer.TokenBytes(id) ?? [];
                        if (spelled.Length > bestLength && bytes.AsSpan(at).StartsWith(spelled))
                            (best, bestLength) = (id, spelled.Length);
                    }

                if (best < 0)
                    break;
                state = compiled.Advance(state, best);
                at += bestLength;
                steps++;
            }

            return (at, steps, clock.Elapsed.TotalMilliseconds / Math.Max(1, steps));
        }

        var first = Pass();
        var again = Pass();
        return new Written(100.0 * first.Written / bytes.Length, first.Tokens, first.Ms, again.Ms);
    }

    /// <summary>Nesting of brackets and parentheses outside JSON strings.</summary>
    private static (int Depth, bool InString, bool Escaped) Track(byte b, int depth, bool inString, bool escaped)
    {
        if (inString)
            return escaped ? (depth, true, false) : b == '\\' ? (depth, true, true) : (depth, b != '"', false);
        return b switch
        {
            (byte)'"' => (depth, true, false),
            (byte)'{' or (byte)'[' or (byte)'(' => (depth + 1, false, false),
            (byte)'}' or (byte)']' or (byte)')' => (depth - 1, false, false),
            _ => (depth, false, false),
        };
    }

    private static int Pick(ulong[] mask, Random random)
    {
        int count = 0;
        foreach (ulong word in mask)
            count += System.Numerics.BitOperations.PopCount(word);
        if (count == 0)
            return -1;
        int target = random.Next(count);
        for (int w = 0; w < mask.Length; w++)
        {
            int bits = System.Numerics.BitOperations.PopCount(mask[w]);
            if (target >= bits)
            {
                target -= bits;
                continue;
            }

            for (ulong word = mask[w]; ; word &= word - 1)
                if (target-- == 0)
                    return w * 64 + System.Numerics.BitOperations.TrailingZeroCount(word);
        }

        return -1;
    }
}
