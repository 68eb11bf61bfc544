using System.Text;

namespace Serving.Server.Hosting;

/// <summary>
/// The command line and the <c>Serving:*</c> configuration checked before start-up: a mistyped switch or key is an error
/// naming it and the closest known one, never a setting silently ignored (which would run the server on a default the
/// operator meant to change). Also the <c>--help</c> text, generated from <see cref="OptionCatalog"/>.
/// </summary>
public static class StartupArguments
{
    /// <summary>Settings of the web host and of logging, passed through to ASP.NET Core as they are.</summary>
    private static readonly string[] HostKeys = ["urls", "environment", "contentRoot", "applicationName", "AllowedHosts", "http_ports", "https_ports"];

    private static readonly string[] HostPrefixes = ["Logging:", "Kestrel:"];

    /// <summary>True when <paramref name="args"/> ask for the help text.</summary>
    public static bool WantsHelp(string[] args) => args.Any(a => a is "--help" or "-h" or "-?");

    /// <summary>
    /// Every problem with <paramref name="args"/> (switches as given, before flags are expanded) and with the
    /// <c>Serving:*</c> keys of <paramref name="configuration"/> (from every source: appsettings.json, environment, command line).
    /// </summary>
    public static IReadOnlyList<string> Problems(string[] args, IConfiguration configuration) =>
        [.. ArgumentProblems(args), .. SettingProblems(configuration)];

    /// <summary>The problems with the switches in <paramref name="args"/> (as given, before flags are expanded).</summary>
    public static IReadOnlyList<string> ArgumentProblems(string[] args)
    {
        var problems = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string token = args[i];
            if (!token.StartsWith('-') && !token.StartsWith('/'))
            {
                problems.Add($"unexpected argument '{token}' (options are --name value)");
                continue;
            }

            if (VllmArguments.Check(args, ref i, problems))
                continue;
            if (JsonConfigArguments.Read(args, ref i) is var (jsonSwitch, json))
            {
                if (json is null)
                    problems.Add($"{jsonSwitch} needs a JSON value");
                else
                    JsonConfigArguments.Switches[jsonSwitch](json, problems);
                continue;
            }

            string name = token.TrimStart('-', '/');
            bool inlineValue = name.Contains('=');
            if (inlineValue)
                name = name[..name.IndexOf('=')];
            if (ServingApp.FlagMappings.ContainsKey("--" + name))
                continue;

            if (!inlineValue)
                i++;                                         // the value
            if (ServingApp.SwitchMappings.ContainsKey("--" + name))
                continue;
            if (name.Contains(':') && name.StartsWith(ServerHostingOptions.Section + ":", StringComparison.OrdinalIgnoreCase))
                continue;                                    // checked with the rest of the configuration below
            if (HostKeys.Contains(name, StringComparer.OrdinalIgnoreCase) || HostPrefixes.Any(p => name.StartsWith(p, StringComparison.OrdinalIgnoreCase)))
                continue;
            problems.Add($"unknown option '{token}'{Suggest("--" + name, KnownSwitches())}");
        }

        return problems;
    }

    /// <summary>The <c>Serving:*</c> keys of <paramref name="configuration"/> that no options class reads.</summary>
    public static IReadOnlyList<string> SettingProblems(IConfiguration configuration) =>
        [.. configuration.GetSection(ServerHostingOptions.Section).AsEnumerable()
            .Where(kv => kv.Value is not null && !OptionCatalog.IsKnown(kv.Key))   // settings, not the sections above them
            .Select(kv => $"unknown setting '{kv.Key}'{Suggest(kv.Key, OptionCatalog.Entries.Select(e => e.Key))}")];

    /// <summary>The <c>--help</c> text: every switch and every setting with its default.</summary>
    public static string Help()
    {
        var text = new StringBuilder();
        text.AppendLine("Serving: a multi-adapter LLM inference server.");
        text.AppendLine();
        text.AppendLine("usage: Serving.Server [--switch value]... [--Serving:Section:Setting value]...");
        text.AppendLine();
        text.AppendLine("Every setting can also be given in appsettings.json, or as an environment variable with __ for ':'");
        text.AppendLine("(Serving__Model__Dtype=float32). Web host: --urls http://HOST:PORT[;...] (default " + ServingApp.DefaultUrl + ").");
        text.AppendLine();
        int width = OptionCatalog.Entries.Max(e => e.Key.Length);
        int switchWidth = KnownSwitches().Max(s => s.Length);
        foreach (var group in OptionCatalog.Entries.GroupBy(e => e.Key[..e.Key.LastIndexOf(':')]))
        {
            text.AppendLine(group.Key + ":");
            foreach (var e in group)
                text.AppendLine($"  {(e.Switch ?? "").PadRight(switchWidth)}  {e.Key.PadRight(width)}  {e.TypeName}{(e.Default.Length > 0 ? $" (default {e.Default})" : "")}");
        }

        foreach (var (flag, (key, value)) in ServingApp.FlagMappings)
            text.AppendLine($"  {flag}: sets {key} to {value}");
        text.AppendLine($"  {SpeculativeConfigArgument.Switch} JSON: vLLM's, as far as it goes here: {{\"method\": \"ngram\", \"num_speculative_tokens\", \"prompt_lookup_max\", \"prompt_lookup_min\"}}");
        text.AppendLine($"  {StructuredOutputsConfigArgument.Switch} JSON: vLLM's, as far as it goes here: {{\"enable_in_reasoning\": true|false, \"reasoning_parser\", \"backend\": \"auto\"}}");
        text.AppendLine($"  {OverrideGenerationConfigArgument.Switch} JSON: vLLM's, request defaults over the generation config's: {{\"temperature\", \"top_p\", \"top_k\", \"repetition_penalty\", \"min_p\"}}");
        text.AppendLine($"  {VllmArguments.Host} HOST, {VllmArguments.Port} PORT: vLLM's, as --urls http://HOST:PORT (HOST default 127.0.0.1, PORT 8000)");
        text.AppendLine($"  {VllmArguments.LoraModules} NAME=PATH...: vLLM's, adapters registered at start-up (Serving:Adapters:Modules)");
        foreach (var (flag, why) in VllmArguments.AlwaysOn)
            text.AppendLine($"  {flag}: vLLM's; accepted, changes nothing ({why})");
        foreach (var (name, (_, means)) in VllmValueSwitches.Fixed)
            text.AppendLine($"  {name} VALUE: vLLM's; this server takes {means}");
        text.AppendLine($"  {VllmValueSwitches.ApiKey} KEY: vLLM's, an admin's API key (Serving:Auth:AdminKeys; without it, {VllmValueSwitches.ApiKeyVariable} from the environment)");
        text.AppendLine("  --help: this text");
        return text.ToString();
    }

    private static IEnumerable<string> KnownSwitches() =>
        ServingApp.SwitchMappings.Keys.Concat(ServingApp.FlagMappings.Keys).Concat(HostKeys.Select(k => "--" + k)).Concat(JsonConfigArguments.Switches.Keys).Concat(VllmArguments.AlwaysOn.Keys).Concat(VllmValueSwitches.Fixed.Keys).Concat(VllmArguments.Lists.Keys).Append(VllmValueSwitches.ApiKey).Append(VllmArguments.Host).Append(VllmArguments.Port).Append(VllmArguments.LoraModules).Append(VllmArguments.ServedModelName).Append("--help");

    /// <summary>"; did you mean X?" for the known name nearest <paramref name="given"/>, when it is near enough to be a typo.</summary>
    private static string Suggest(string given, IEnumerable<string> known)
    {
        var best = known.Select(k => (Name: k, Distance: Distance(given.ToLowerInvariant(), k.ToLowerInvariant()))).MinBy(c => c.Distance);
        return best.Name is null ? "; see --help"
            : best.Distance <= Math.Max(2, given.Length / 3) ? $"; did you mean '{best.Name}'?"
            : $"; the closest known is '{best.Name}' (see --help for all)";
    }

    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
            previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
