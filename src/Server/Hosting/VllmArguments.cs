namespace Serving.Server.Hosting;

/// <summary>
/// vLLM's switches for where to listen (<c>--host</c>, <c>--port</c>: this server's <c>--urls http://HOST:PORT</c>, the
/// host defaulting to loopback as this server's default does, where vLLM's listens on every interface) and its flags this
/// server needs no switch for (<c>--enable-lora</c>: adapters are always served), its start-up adapters
/// (<c>--lora-modules name=path …</c>, or its JSON form <c>{"name": …, "path": …}</c>: <c>Serving:Adapters:Modules</c>), and
/// the value switches of <see cref="VllmValueSwitches"/>, its CORS lists (<c>--allowed-origins '["https://app.example"]'</c>:
/// <c>Serving:Cors:*</c>), and HTTPS with <c>--ssl-certfile</c> (the address's scheme), so a deployment's vLLM command line
/// starts this server unchanged.
/// </summary>
public static class VllmArguments
{
    public const string Host = "--host", Port = "--port", LoraModules = "--lora-modules", SslCertFile = "--ssl-certfile", ServedModelName = "--served-model-name";

    /// <summary>vLLM's CORS switches, whose value is a JSON list of strings, and the settings each fills.</summary>
    public static readonly IReadOnlyDictionary<string, string> Lists = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["--allowed-origins"] = "Serving:Cors:AllowedOrigins",
        ["--allowed-methods"] = "Serving:Cors:AllowedMethods",
        ["--allowed-headers"] = "Serving:Cors:AllowedHeaders",
    };

    /// <summary>vLLM flags that ask for what this server always does, and why they change nothing.</summary>
    public static readonly IReadOnlyDictionary<string, string> AlwaysOn = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["--enable-lora"] = "adapters are always served",
        ["--enable-chunked-prefill"] = "prompts are always prefilled in chunks of at most --max-num-batched-tokens tokens a step",
        ["--enable-auto-tool-choice"] = "tool_choice auto reads the model's tool calls whenever --tool-call-parser names how it writes them",
        ["--trust-remote-code"] = "no code from a model folder is ever run: its config, weights and tokenizer are read as data",
        ["--disable-log-requests"] = "requests' contents are never logged",
        ["--enforce-eager"] = "every step runs eagerly: no CUDA graph is captured",
        ["--disable-log-stats"] = "no statistics are logged periodically: /metrics serves them",
        ["--disable-uvicorn-access-log"] = "no access log is written",
        ["--enable-prompt-tokens-details"] = "usage always reports prompt_tokens_details.cached_tokens",
        ["--enable-request-id-headers"] = "every response carries X-Request-Id (the caller's, else the server's)",
    };

    /// <summary>
    /// <paramref name="args"/> with <c>--host</c>/<c>--port</c> as <c>--urls</c>, <c>--api-key</c> (or, without it,
    /// <paramref name="environment"/>'s <c>VLLM_API_KEY</c>) as admin keys, and the always-on flags and fixed values left out.
    /// </summary>
    public static string[] Expand(string[] args, Func<string, string?>? environment = null)
    {
        var kept = new List<string>(args.Length);
        var keys = new List<string>();
        string? host = null, port = null;
        int moduleCount = 0;
        for (int i = 0; i < args.Length; i++)
        {
            if (AlwaysOn.ContainsKey(args[i]) || FixedValue(args, ref i) is not null)
                continue;
            if (Value(args, ref i, VllmValueSwitches.ApiKey) is { } key)
            {
                keys.Add(key);
                continue;
            }

            if (ListValue(args, ref i) is var (list, items))
            {
                for (int n = 0; n < (items?.Count ?? 0); n++)
                    kept.AddRange([$"--{Lists[list]}:{n}", items![n]]);
                continue;
            }

            if (Names(args, ref i) is { Count: > 0 } names)
            {
                kept.AddRange(["--Serving:Model:Name", names[0]]);
                for (int n = 1; n < names.Count; n++)
                    kept.AddRange([$"--Serving:Model:Aliases:{n - 1}", names[n]]);
                continue;
            }

            if (Modules(args, ref i) is { } modules)
            {
                foreach (string module in modules)
                    if (Module(module) is var (name, path))
                    {
                        kept.AddRange([$"--Serving:Adapters:Modules:{moduleCount}:Name", name, $"--Serving:Adapters:Modules:{moduleCount}:Path", path]);
                        moduleCount++;
                    }
            }
            else if (Value(args, ref i, Host) is { } h)
                host = h;
            else if (Value(args, ref i, Port) is { } p)
                port = p;
            else
                kept.Add(args[i]);
        }

        // With a certificate vLLM serves HTTPS on its address: so here, unless --urls says where to listen.
        bool tls = args.Any(a => a == SslCertFile || a.StartsWith(SslCertFile + "=", StringComparison.Ordinal));
        bool urls = args.Any(a => a == "--urls" || a.StartsWith("--urls=", StringComparison.Ordinal));
        if (host is not null || port is not null || tls && !urls)
            kept.AddRange(["--urls", $"{(tls ? "https" : "http")}://{host ?? "127.0.0.1"}:{port ?? "8000"}"]);
        kept.AddRange(VllmValueSwitches.AdminKeySettings(keys, environment ?? Environment.GetEnvironmentVariable));
        return [.. kept];
    }

    /// <summary>The warnings to log at start-up for switches accepted but ignored.</summary>
    public static IEnumerable<string> IgnoredNotes(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
            if (FixedValue(args, ref i) is var (name, value) && VllmValueSwitches.Ignored.Contains(name))
                yield return $"{name} {value} is vLLM's; this server takes {VllmValueSwitches.Fixed[name].Means}";
    }

    /// <summary>(switch, value) when <paramref name="args"/>[<paramref name="i"/>] is one of <see cref="VllmValueSwitches.Fixed"/>, moving past its value; else null.</summary>
    private static (string Name, string Value)? FixedValue(string[] args, ref int i)
    {
        foreach (string name in VllmValueSwitches.Fixed.Keys)
            if (Value(args, ref i, name) is { } value)
                return (name, value);
        return null;
    }

    /// <summary>
    /// Whether <paramref name="args"/>[<paramref name="i"/>] is one of these switches (moving <paramref name="i"/> past its
    /// value), adding what is wrong with it to <paramref name="problems"/>.
    /// </summary>
    public static bool Check(string[] args, ref int i, List<string> problems)
    {
        if (AlwaysOn.ContainsKey(args[i]))
            return true;
        if (FixedValue(args, ref i) is var (fixedName, fixedValue))
        {
            if (!VllmValueSwitches.Fixed[fixedName].Accepts(fixedValue))
                problems.Add($"{fixedName}: '{fixedValue}' is not supported; this server takes {VllmValueSwitches.Fixed[fixedName].Means}");
            return true;
        }

        if (Value(args, ref i, VllmValueSwitches.ApiKey) is { } key)
        {
            if (VllmValueSwitches.KeyProblem(key) is { } keyProblem)
                problems.Add(keyProblem);
            return true;
        }

        if (Names(args, ref i) is { } names)
        {
            if (names.Count == 0)
                problems.Add($"{ServedModelName}: needs one or more names (the first is the model's id, the others aliases)");
            return true;
        }

        if (ListValue(args, ref i) is var (list, items))
        {
            if (items is null)
                problems.Add($"{list}: must be a JSON list of strings, e.g. '[\"https://app.example\"]'");
            return true;
        }

        if (Modules(args, ref i) is { } modules)
        {
            if (modules.Count == 0)
                problems.Add($"{LoraModules}: needs one or more name=path (or {{\"name\": …, \"path\": …}})");
            foreach (string module in modules.Where(m => Module(m) is null))
                problems.Add($"{LoraModules}: '{module}' is not name=path nor {{\"name\": …, \"path\": …}}");
            return true;
        }

        if (Value(args, ref i, Host) is { } host)
        {
            if (host.Length == 0 || host.Any(c => char.IsWhiteSpace(c) || c is '/' or '[' or ']'))
                problems.Add($"{Host}: '{host}' is not a host name or IPv4 address");
        }
        else if (Value(args, ref i, Port) is { } port)
        {
            if (!int.TryParse(port, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int p) || p is < 1 or > 65_535)
                problems.Add($"{Port}: '{port}' is not a port number (1 to 65535)");
        }
        else
            return false;
        if (args.Any(a => a == "--urls" || a.StartsWith("--urls=", StringComparison.Ordinal)))
            problems.Add($"{args[i].Split('=')[0]}: give --host/--port or --urls, not both");
        return true;
    }

    /// <summary>
    /// (switch, its JSON list's strings) when <paramref name="args"/>[<paramref name="i"/>] is one of <see cref="Lists"/>,
    /// moving past its value; the strings are null when the value is no JSON list of strings. Null when it is none.
    /// </summary>
    private static (string Switch, IReadOnlyList<string>? Items)? ListValue(string[] args, ref int i)
    {
        foreach (string name in Lists.Keys)
            if (Value(args, ref i, name) is { } value)
            {
                try
                {
                    using var doc = System.Text.Json.JsonDocument.Parse(value);
                    var items = doc.RootElement.ValueKind == System.Text.Json.JsonValueKind.Array
                        && doc.RootElement.EnumerateArray().All(e => e.ValueKind == System.Text.Json.JsonValueKind.String)
                        ? doc.RootElement.EnumerateArray().Select(e => e.GetString()!).ToList() : null;
                    return (name, items);
                }
                catch (System.Text.Json.JsonException)
                {
                    return (name, null);
                }
            }

        return null;
    }

    /// <summary>
    /// The names of <c>--served-model-name</c> when <paramref name="args"/>[<paramref name="i"/>] is it (vLLM's: the first the
    /// model's id, the others aliases), moving past them; else null.
    /// </summary>
    private static List<string>? Names(string[] args, ref int i) => ValueList(args, ref i, ServedModelName);

    /// <summary>The values of <c>--lora-modules</c> when <paramref name="args"/>[<paramref name="i"/>] is it, moving past them; else null.</summary>
    private static List<string>? Modules(string[] args, ref int i) => ValueList(args, ref i, LoraModules);

    /// <summary>
    /// The values of switch <paramref name="name"/> when <paramref name="args"/>[<paramref name="i"/>] is it: every argument up
    /// to the next switch (as vLLM's list switches take them), or the one after <c>=</c>; moving past them. Else null.
    /// </summary>
    private static List<string>? ValueList(string[] args, ref int i, string name)
    {
        if (args[i].StartsWith(name + "=", StringComparison.Ordinal))
            return [args[i][(name.Length + 1)..]];
        if (args[i] != name)
            return null;
        var values = new List<string>();
        while (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            values.Add(args[++i]);
        return values;
    }

    /// <summary>One <c>--lora-modules</c> value as (name, path): <c>name=path</c>, or vLLM's JSON form (its <c>base_model_name</c> is this server's one model); null when it is neither.</summary>
    private static (string Name, string Path)? Module(string value)
    {
        if (value.TrimStart().StartsWith('{'))
        {
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(value);
                var root = doc.RootElement;
                return root.ValueKind == System.Text.Json.JsonValueKind.Object
                    && root.TryGetProperty("name", out var name) && name.ValueKind == System.Text.Json.JsonValueKind.String
                    && root.TryGetProperty("path", out var path) && path.ValueKind == System.Text.Json.JsonValueKind.String
                    ? (name.GetString()!, path.GetString()!) : null;
            }
            catch (System.Text.Json.JsonException)
            {
                return null;
            }
        }

        int at = value.IndexOf('=');
        return at > 0 && at < value.Length - 1 ? (value[..at], value[(at + 1)..]) : null;
    }

    /// <summary>The value of switch <paramref name="name"/> when <paramref name="args"/>[<paramref name="i"/>] is it (<c>--name value</c> or <c>--name=value</c>), moving past it; else null.</summary>
    private static string? Value(string[] args, ref int i, string name)
    {
        if (args[i] == name)
            return i + 1 < args.Length ? args[++i] : "";
        return args[i].StartsWith(name + "=", StringComparison.Ordinal) ? args[i][(name.Length + 1)..] : null;
    }
}
