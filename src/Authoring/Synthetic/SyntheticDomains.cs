using Serving.Engine.Sampling;

namespace Serving.Authoring.Synthetic;

/// <summary>
/// Small synthetic "domains" whose prompts and completions look nothing alike, for training demo adapters and measuring
/// routing: <c>digits</c> (reverse a 4-digit string), <c>clinical</c> (a fixed clinical-note format), <c>toylang</c> (map
/// words of a toy language to English). Deterministic for a random source.
/// </summary>
public static class SyntheticDomains
{
    public static readonly IReadOnlyList<string> Names = ["digits", "clinical", "toylang"];

    private static readonly string[] Words = ["blork", "zim", "quap", "dreeb", "snoo", "varn", "plim", "tork"];
    private static readonly string[] English = ["hello", "world", "water", "stone", "river", "light", "house", "night"];
    private static readonly string[] Symptoms = ["cough", "fever", "headache", "nausea", "rash", "fatigue", "dizziness", "chills"];

    public static (string Prompt, string Completion) Example(string domain, SeededRandom r)
    {
        switch (domain)
        {
            case "digits":
                string d = string.Concat(Enumerable.Range(0, 4).Select(_ => (char)('0' + (int)(r.NextUInt64() % 10))));
                return ($"reverse {d}:", " " + new string(d.Reverse().ToArray()));
            case "clinical":
                string s = Symptoms[r.NextUInt64() % (ulong)Symptoms.Length];
                int days = 1 + (int)(r.NextUInt64() % 9);
                return ($"patient reports {s} for {days} days.", $" S: {s} x{days}d. O: stable. A: {s}. P: follow up.");
            case "toylang":
                int i = (int)(r.NextUInt64() % (ulong)Words.Length), j = (int)(r.NextUInt64() % (ulong)Words.Length);
                return ($"translate {Words[i]} {Words[j]}:", $" {English[i]} {English[j]}");
            default:
                throw new ArgumentException($"unknown domain '{domain}' (expected one of {string.Join(", ", Names)})");
        }
    }

    /// <summary>
    /// Trains a LoRA adapter for <paramref name="domain"/> on <paramref name="examples"/> generated pairs and writes it to
    /// <paramref name="outDir"/>; returns the pairs (the prompt is tokenized with special tokens, the completion ends with EOS).
    /// </summary>
    public static IReadOnlyList<(string Prompt, string Completion)> TrainAdapter(Serving.Engine.Model.LoadedModel model, string domain, SeededRandom random, int examples,
        Training.LoraTrainingOptions options, string outDir, Action<int, int, double>? progress = null)
    {
        var pairs = Enumerable.Range(0, examples).Select(_ => Example(domain, random)).ToList();
        var data = pairs.Select(p => new Training.TrainingExample(model.Tokenizer.Encode(p.Prompt),
            [.. model.Tokenizer.Encode(p.Completion, addSpecialTokens: false), model.EosTokenIds[0]])).ToList();
        new Training.LoraTrainer(model, options) { Progress = progress }.Train(data, outDir);
        return pairs;
    }
}
