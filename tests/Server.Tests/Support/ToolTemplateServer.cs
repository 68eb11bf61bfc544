using Serving.Authoring.Synthetic;
using Serving.Engine.Tokenization;

namespace Serving.Server.Tests.Support;

/// <summary>
/// A server on a generated random-weight model (float32) whose chat template shows the tools' names and each message as
/// <c>role:content</c>: the tool-call and reasoning tests' server, with their parser switches.
/// </summary>
internal static class ToolTemplateServer
{
    public const string Template =
        "{% if tools %}TOOLS:{% for t in tools %}{{ t['function']['name'] + ';' }}{% endfor %}{{ '\\n' }}{% endif %}"
        + "{% for m in messages %}{{ m['role'] + ':' + (m['content'] or '') + '\\n' }}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

    /// <summary>Writes the model as <paramref name="root"/>/<paramref name="name"/> (its id) and starts a server on it with <paramref name="switches"/>.</summary>
    public static Task<ServerProcess> StartAsync(string root, string name, ulong seed, params string[] switches) =>
        StartWithTemplateAsync(root, name, seed, Template, switches);

    /// <summary>The same with a chat template of the test's own.</summary>
    public static Task<ServerProcess> StartWithTemplateAsync(string root, string name, ulong seed, string template, params string[] switches)
    {
        string model = Path.Combine(root, name);
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = seed });
        File.WriteAllText(Path.Combine(model, ChatTemplate.FileName), template);
        return ServerProcess.StartAsync(["--model", model, "--dtype", "float32", "--adapter-registry", Path.Combine(root, "registry.json"), .. switches]);
    }
}
