using Serving.Engine.Safetensors;
using Serving.Engine.Synthetic;

// Usage:
//   ModelGen model   --preset tiny|bench --out DIR [--seed N] [--dtype f32|f16|bf16] [--arch llama|mistral|qwen2] [--shards N] [--tie]
//   ModelGen adapter --model DIR --out DIR [--rank R] [--alpha A] [--targets q_proj,v_proj,...] [--seed N] [--rslora]
var options = ParseOptions(args.Skip(1));
try
{
    switch (args.FirstOrDefault())
    {
        case "model":
            var spec = new SyntheticModelSpec
            {
                Preset = ModelPreset.Parse(Get("preset", "tiny")),
                Seed = ulong.Parse(Get("seed", "1")),
                DiskDtype = Get("dtype", "f32") switch
                {
                    "f32" or "float32" => SafetensorsDtype.F32,
                    "f16" or "float16" => SafetensorsDtype.F16,
                    "bf16" or "bfloat16" => SafetensorsDtype.BF16,
                    var d => throw new ArgumentException($"unknown --dtype '{d}' (f32, f16, bf16)"),
                },
                Architecture = Get("arch", "llama") switch
                {
                    "llama" => "LlamaForCausalLM",
                    "mistral" => "MistralForCausalLM",
                    "qwen2" => "Qwen2ForCausalLM",
                    var a => throw new ArgumentException($"unknown --arch '{a}' (llama, mistral, qwen2)"),
                },
                Shards = int.Parse(Get("shards", "1")),
                TieWordEmbeddings = options.ContainsKey("tie"),
            };
            SyntheticModelWriter.Write(Required("out"), spec);
            Console.WriteLine($"wrote {spec.Preset.Name} model ({spec.Architecture}, {spec.DiskDtype}, seed {spec.Seed}) to {Required("out")} — random weights");
            return 0;
        case "adapter":
            var targets = Get("targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj").Split(',', StringSplitOptions.RemoveEmptyEntries);
            SyntheticAdapterWriter.Write(Required("out"), Required("model"), int.Parse(Get("rank", "8")), double.Parse(Get("alpha", "16")),
                targets, ulong.Parse(Get("seed", "1")), options.ContainsKey("rslora"));
            Console.WriteLine($"wrote LoRA adapter (r={Get("rank", "8")}, targets {string.Join(",", targets)}) to {Required("out")}");
            return 0;
        default:
            Console.Error.WriteLine("usage: ModelGen model --preset tiny|bench --out DIR [--seed N] [--dtype f32|f16|bf16] [--arch llama|mistral|qwen2] [--shards N] [--tie]");
            Console.Error.WriteLine("       ModelGen adapter --model DIR --out DIR [--rank R] [--alpha A] [--targets q_proj,v_proj] [--seed N] [--rslora]");
            return 2;
    }
}
catch (Exception ex) when (ex is ArgumentException or FormatException or IOException)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 1;
}

string Get(string name, string fallback) => options.TryGetValue(name, out var v) ? v : fallback;

string Required(string name) => options.TryGetValue(name, out var v) ? v : throw new ArgumentException($"--{name} is required");

static Dictionary<string, string> ParseOptions(IEnumerable<string> args)
{
    var result = new Dictionary<string, string>();
    var list = args.ToList();
    for (int i = 0; i < list.Count; i++)
    {
        if (!list[i].StartsWith("--", StringComparison.Ordinal))
            throw new ArgumentException($"unexpected argument '{list[i]}'");
        string key = list[i][2..];
        bool hasValue = i + 1 < list.Count && !list[i + 1].StartsWith("--", StringComparison.Ordinal);
        result[key] = hasValue ? list[++i] : "true";
    }

    return result;
}
