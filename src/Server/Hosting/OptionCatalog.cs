using System.Collections;
using System.Globalization;
using System.Reflection;
using Serving.Runtime.Hosting;

namespace Serving.Server.Hosting;

/// <summary>
/// Every <c>Serving:*</c> setting, read off the options classes the server binds (so the list cannot drift from them):
/// public settable properties, nested option objects as sub-sections, lists as numbered positions.
/// </summary>
public static class OptionCatalog
{
    /// <summary>The options classes and the sections they are bound to.</summary>
    public static readonly IReadOnlyList<(string Section, Type Type)> Sections =
    [
        (ServerHostingOptions.Section, typeof(ServerHostingOptions)),
        .. RuntimeServices.OptionSections,
        (Security.AuthOptions.Section, typeof(Security.AuthOptions)),
        (Api.OpenAi.ChatOptions.Section, typeof(Api.OpenAi.ChatOptions)),
        (Api.OpenAi.Responses.ResponsesOptions.Section, typeof(Api.OpenAi.Responses.ResponsesOptions)),
        (Requests.EmbeddingOptions.Section, typeof(Requests.EmbeddingOptions)),
        (Requests.ScoreOptions.Section, typeof(Requests.ScoreOptions)),
        (Observability.MetricsOptions.Section, typeof(Observability.MetricsOptions)),
    ];

    /// <summary>A list position in a key pattern.</summary>
    public const string Position = "*";

    private static readonly Lazy<IReadOnlyList<OptionEntry>> AllEntries = new(Build);

    /// <summary>Every setting, in section order.</summary>
    public static IReadOnlyList<OptionEntry> Entries => AllEntries.Value;

    /// <summary>Whether <paramref name="key"/> (any case; list positions as numbers) is a setting, or a section above settings.</summary>
    public static bool IsKnown(string key)
    {
        var parts = key.Split(':');
        foreach (var entry in Entries)
        {
            var pattern = entry.Key.Split(':');
            if (parts.Length > pattern.Length)
                continue;
            bool match = true;
            for (int i = 0; i < parts.Length && match; i++)
                match = pattern[i] == Position ? int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out _)
                    : string.Equals(pattern[i], parts[i], StringComparison.OrdinalIgnoreCase);
            if (match)
                return true;
        }

        return false;
    }

    private static List<OptionEntry> Build()
    {
        var switches = ServingApp.SwitchMappings.GroupBy(kv => kv.Value, StringComparer.OrdinalIgnoreCase)
            .ToDictionary(g => g.Key, g => string.Join(", ", g.Select(kv => kv.Key)), StringComparer.OrdinalIgnoreCase);
        foreach (var (flag, (key, _)) in ServingApp.FlagMappings)
            switches.TryAdd(key, flag);
        var entries = new List<OptionEntry>();
        foreach (var (section, type) in Sections)
            Add(entries, section, type, Activator.CreateInstance(type), switches);
        return entries;
    }

    private static void Add(List<OptionEntry> entries, string prefix, Type type, object? defaults, Dictionary<string, string> switches)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).OrderBy(p => p.MetadataToken))
        {
            string key = $"{prefix}:{property.Name}";
            object? value = defaults is null ? null : property.GetValue(defaults);
            var t = property.PropertyType;
            if (IsLeaf(t))
            {
                if (property.SetMethod is { IsPublic: true })
                    entries.Add(new OptionEntry(key, TypeName(t), Text(value), switches.GetValueOrDefault(key)));
            }
            else if (ElementOf(t) is Type element)
            {
                if (IsLeaf(element))
                    entries.Add(new OptionEntry($"{key}:{Position}", TypeName(element), "", switches.GetValueOrDefault(key)));
                else
                    Add(entries, $"{key}:{Position}", element, null, switches);
            }
            else if (property.SetMethod is { IsPublic: true } && t.IsClass)
                Add(entries, key, t, value, switches);
        }
    }

    private static bool IsLeaf(Type t)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        return t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(decimal) || t == typeof(TimeSpan) || t == typeof(DateTimeOffset) || t == typeof(DateTime) || t == typeof(Uri);
    }

    private static Type? ElementOf(Type t) =>
        t == typeof(string) || !typeof(IEnumerable).IsAssignableFrom(t) ? null
        : t.IsArray ? t.GetElementType()
        : t.IsGenericType ? t.GetGenericArguments()[0] : null;

    private static string TypeName(Type t)
    {
        var underlying = Nullable.GetUnderlyingType(t) ?? t;
        string name = underlying.IsEnum ? string.Join("|", Enum.GetNames(underlying))
            : underlying == typeof(int) || underlying == typeof(long) ? "integer"
            : underlying == typeof(double) || underlying == typeof(float) ? "number"
            : underlying == typeof(bool) ? "true|false"
            : underlying == typeof(DateTimeOffset) ? "date-time"
            : underlying.Name.ToLowerInvariant();
        return name;
    }

    private static string Text(object? value) => value switch
    {
        null => "",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
