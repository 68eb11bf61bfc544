using Serving.Engine.Checkpoints;
using Serving.Engine.Model;
using Serving.Engine.Tokenization;

namespace Serving.Runtime.Hosting;

/// <summary>
/// <c>Serving:Model:ChatTemplate</c> (vLLM's <c>--chat-template</c>): a Jinja file's path, or the template itself — as vLLM
/// reads it, a value that names no file and holds <c>{{</c> or <c>{%</c> is the template. Parsed at start-up, so a bad one
/// stops it naming the problem.
/// </summary>
internal static class ChatTemplateOption
{
    public static ChatTemplate Load(string value, LoadedModel model)
    {
        string source = File.Exists(value) ? File.ReadAllText(value)
            : value.Contains("{{", StringComparison.Ordinal) || value.Contains("{%", StringComparison.Ordinal) ? value
            : throw new ModelLoadException($"Serving:Model:ChatTemplate (--chat-template): '{value}' is no file, and not a template (no {{{{ or {{%)");
        try
        {
            return ChatTemplate.Parse(source, model.Tokenizer.Specials.BosToken, model.Tokenizer.Specials.EosToken);
        }
        catch (ChatTemplateException ex)
        {
            throw new ModelLoadException($"Serving:Model:ChatTemplate (--chat-template): {ex.Message}", ex);
        }
    }
}
