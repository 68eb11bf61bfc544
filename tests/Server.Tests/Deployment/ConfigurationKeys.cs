using System.Reflection;
using Serving.AdapterStore;
using Serving.Runtime.Hosting;
using Serving.Server.Hosting;

namespace Serving.Server.Tests.Deployment;

/// <summary>Whether an environment-style key (<c>Serving__Section__Key</c>) binds to a property of the server's options.</summary>
internal static class ConfigurationKeys
{
    private static readonly Dictionary<string, Type> Sections = new(StringComparer.OrdinalIgnoreCase)
    {
        ["Model"] = typeof(ModelOptions),
        ["Adapters"] = typeof(AdapterStoreOptions),
        ["Batching"] = typeof(Serving.Batching.BatchingOptions),
        ["Routing"] = typeof(Serving.Runtime.Routing.RoutingOptions),
        ["Auth"] = typeof(Serving.Server.Security.AuthOptions),
        ["Metrics"] = typeof(Serving.Server.Observability.MetricsOptions),
    };

    /// <summary>Top-level keys read directly from configuration (not through an options class).</summary>
    private static readonly HashSet<string> Direct = new(StringComparer.OrdinalIgnoreCase) { "Serving__ShutdownGraceSeconds", "Serving__Tracing__OtlpEndpoint" };

    public static bool Exists(string key)
    {
        if (Direct.Contains(key))
            return true;
        var parts = key.Split("__");
        if (parts.Length < 3 || parts[0] != "Serving" || !Sections.TryGetValue(parts[1], out var type))
            return false;
        foreach (var name in parts[2..])
        {
            var property = type.GetProperty(name, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is null)
                return false;
            type = property.PropertyType;
        }

        return true;
    }
}
