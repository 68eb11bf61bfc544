using System.Globalization;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Commands;

/// <summary><c>--name value</c> pairs and bare <c>--flag</c>s after the command word; unknown names are refused by the command.</summary>
internal sealed class CommandOptions
{
    /// <summary>Options whose value is always the next argument, even when it starts with <c>--</c> (server argument lists).</summary>
    private static readonly HashSet<string> RawValueOptions = new(StringComparer.Ordinal) { "a", "b", "args" };

    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    public CommandOptions(IEnumerable<string> args)
    {
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            if (!list[i].StartsWith("--", StringComparison.Ordinal))
                throw new ScenarioException($"unexpected argument '{list[i]}' (options are --name value)");
            string name = list[i][2..];
            bool hasValue = i + 1 < list.Count && (RawValueOptions.Contains(name) || !list[i + 1].StartsWith("--", StringComparison.Ordinal));
            _values[name] = hasValue ? list[++i] : null;
        }
    }

    public string? Get(string name)
    {
        _read.Add(name);
        return _values.GetValueOrDefault(name);
    }

    public string Required(string name) => Get(name) ?? throw new ScenarioException($"--{name} is required");

    public bool Flag(string name)
    {
        _read.Add(name);
        return _values.ContainsKey(name);
    }

    public int? Int(string name) => Get(name) is { } v
        ? int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) ? i : throw new ScenarioException($"--{name}: '{v}' is not an integer")
        : null;

    public double? Double(string name) => Get(name) is { } v
        ? double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : throw new ScenarioException($"--{name}: '{v}' is not a number")
        : null;

    public int[]? IntList(string name) => Get(name)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(v => int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) && i >= 0 ? i : throw new ScenarioException($"--{name}: '{v}' is not a non-negative integer"))
        .ToArray();

    /// <summary>Throws for any option the command never asked about, so a typo is not silently ignored.</summary>
    public void RefuseUnknown()
    {
        var unknown = _values.Keys.Where(k => !_read.Contains(k)).ToArray();
        if (unknown.Length > 0)
            throw new ScenarioException($"unknown option{(unknown.Length > 1 ? "s" : "")} {string.Join(", ", unknown.Select(u => "--" + u))}");
    }

    /// <summary>The scenario file (<c>--scenario</c>) with the command-line overrides applied, then validated.</summary>
    public Scenario Scenario()
    {
        string path = Required("scenario");
        var scenario = ScenarioFile.Read(path);
        scenario = scenario with
        {
            Target = Get("target") ?? scenario.Target,
            Protocol = Get("protocol") ?? scenario.Protocol,
            ApiKey = Get("api-key") ?? scenario.ApiKey,
            Requests = Int("requests") ?? scenario.Requests,
            DurationSeconds = Double("duration") ?? scenario.DurationSeconds,
            Seed = Int("seed") is { } seed ? (ulong)seed : scenario.Seed,
        };
        if (Int("concurrency") is { } c)
            scenario = scenario with { Arrival = scenario.Arrival with { Mode = "closed", Concurrency = c } };
        if (Double("rate") is { } rate)
            scenario = scenario with { Arrival = scenario.Arrival with { Mode = "poisson", Rate = rate } };
        return ScenarioFile.Check(scenario, path);
    }
}
