using System.Text.Json;

namespace Serving.LoadTests.Scenarios;

/// <summary>Reads a scenario JSON file; any problem is one <see cref="ScenarioException"/> naming the file and key.</summary>
internal static class ScenarioFile
{
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow,
        WriteIndented = true,
    };

    public static Scenario Read(string path)
    {
        if (!File.Exists(path))
            throw new ScenarioException($"{path}: no such scenario file");
        Scenario? scenario;
        try
        {
            scenario = JsonSerializer.Deserialize<Scenario>(File.ReadAllText(path), Json);
        }
        catch (JsonException ex)
        {
            throw new ScenarioException($"{path}: {ex.Message}");
        }

        return Check(scenario ?? throw new ScenarioException($"{path}: the file holds null"), path);
    }

    public static Scenario Check(Scenario scenario, string origin)
    {
        var errors = scenario.Validate();
        return errors.Count == 0 ? scenario : throw new ScenarioException($"{origin}: {string.Join("; ", errors)}");
    }
}
