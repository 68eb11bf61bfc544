using System.Text.Json;
using Serving.Engine.Tokenization;

namespace Serving.Authoring.Training;

/// <summary>
/// Reads JSONL training data: one <c>{"prompt": "...", "completion": "..."}</c> object per line (blank lines skipped). The
/// prompt is tokenized with the model's special tokens (as the server does for a text prompt); the completion without
/// them, followed by EOS so the adapter learns to stop.
/// </summary>
public static class TrainingData
{
    public static List<TrainingExample> Read(string path, HfTokenizer tokenizer, int eosTokenId)
    {
        var examples = new List<TrainingExample>();
        int line = 0;
        foreach (string text in File.ReadLines(path))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text))
                continue;
            try
            {
                using var doc = JsonDocument.Parse(text);
                string prompt = doc.RootElement.GetProperty("prompt").GetString() ?? throw new FormatException("prompt is null");
                string completion = doc.RootElement.GetProperty("completion").GetString() ?? throw new FormatException("completion is null");
                examples.Add(new TrainingExample(tokenizer.Encode(prompt), [.. tokenizer.Encode(completion, addSpecialTokens: false), eosTokenId]));
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new FormatException($"{path}:{line}: expected {{\"prompt\": string, \"completion\": string}} ({ex.Message})", ex);
            }
        }

        return examples;
    }
}
