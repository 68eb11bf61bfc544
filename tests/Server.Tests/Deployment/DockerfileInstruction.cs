namespace Serving.Server.Tests.Deployment;

/// <summary>One Dockerfile instruction (continuation lines joined), with the stage it belongs to.</summary>
internal sealed record DockerfileInstruction(string Keyword, string Arguments, string Stage, int Line)
{
    /// <summary>The exec-form JSON array of a CMD/ENTRYPOINT/HEALTHCHECK CMD, or null for shell form.</summary>
    public string[]? ExecForm(string afterPrefix = "")
    {
        string text = Arguments;
        if (afterPrefix.Length > 0)
        {
            int at = text.IndexOf(afterPrefix, StringComparison.Ordinal);
            if (at < 0)
                return null;
            text = text[(at + afterPrefix.Length)..];
        }

        text = text.Trim();
        return text.StartsWith('[') ? System.Text.Json.JsonSerializer.Deserialize<string[]>(text) : null;
    }

    public static List<DockerfileInstruction> Parse(string path)
    {
        var result = new List<DockerfileInstruction>();
        string stage = "";
        var lines = File.ReadAllLines(path);
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#'))
                continue;
            int start = i;
            while (line.EndsWith('\\') && i + 1 < lines.Length)
                line = line[..^1].TrimEnd() + " " + lines[++i].Trim();
            int space = line.IndexOf(' ');
            string keyword = (space < 0 ? line : line[..space]).ToUpperInvariant();
            string arguments = space < 0 ? "" : line[(space + 1)..].Trim();
            if (keyword == "FROM")
            {
                int asAt = arguments.IndexOf(" AS ", StringComparison.OrdinalIgnoreCase);
                stage = asAt < 0 ? arguments : arguments[(asAt + 4)..].Trim();
            }

            result.Add(new DockerfileInstruction(keyword, arguments, stage, start + 1));
        }

        return result;
    }
}
