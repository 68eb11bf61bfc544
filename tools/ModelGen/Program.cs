using Serving.Authoring.Synthetic;
using Serving.Contracts.Safetensors;

// Usage:
//   ModelGen model   --preset tiny|bench --out DIR [--seed N] [--dtype f32|f16|bf16] [--arch llama|mistral|qwen2|qwen3|granite|phi3|gemma2|gemma3|mixtral|qwen2-moe|qwen3-moe|gpt-oss|olmo2|olmo3|embeddinggemma|granite-moe] [--mxfp4] [--shards N] [--tie]
//   ModelGen adapter --model DIR --out DIR [--rank R] [--alpha A] [--targets q_proj,v_proj,...] [--seed N] [--rslora] [--dora] [--count N]
//   ModelGen train-adapter --model DIR --data train.jsonl --out DIR [--rank R] [--alpha A] [--targets ...] [--steps N] [--batch B] [--lr X] [--seed N] [--dora]
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
                    "qwen3" => "Qwen3ForCausalLM",
                    "granite" => "GraniteForCausalLM",
                    "phi3" => "Phi3ForCausalLM",
                    "gemma2" => "Gemma2ForCausalLM",
                    "gemma3" => "Gemma3ForCausalLM",
                    "mixtral" => "MixtralForCausalLM",
                    "qwen2-moe" => "Qwen2MoeForCausalLM",
                    "qwen3-moe" => "Qwen3MoeForCausalLM",
                    "gpt-oss" => "GptOssForCausalLM",
                    "olmo2" => "Olmo2ForCausalLM",
                    "olmo3" => "Olmo3ForCausalLM",
                    "embeddinggemma" => "Gemma3TextModel",
                    "granite-moe" => GraniteMoeCheckpoint.Architecture,
                    var a => throw new ArgumentException($"unknown --arch '{a}' (llama, mistral, qwen2, qwen3, granite, phi3, gemma2, gemma3, mixtral, qwen2-moe, qwen3-moe, gpt-oss, olmo2, olmo3, embeddinggemma, granite-moe)"),
                },
                Shards = int.Parse(Get("shards", "1")),
                TieWordEmbeddings = options.ContainsKey("tie"),
                Mxfp4Experts = options.ContainsKey("mxfp4"),
            };
            if (spec.Architecture == "Gemma3TextModel")
                EmbeddingGemmaCheckpoint.Write(NewOutput("out"), spec);      // bidirectional, mean pooling, Dense modules
            else if (spec.Architecture == GraniteMoeCheckpoint.Architecture)
                GraniteMoeCheckpoint.Write(NewOutput("out"), spec);          // float32, one shard: restacked from Mixtral's names
            else
                SyntheticModelWriter.Write(NewOutput("out"), spec);
            Console.WriteLine($"wrote {spec.Preset.Name} model ({spec.Architecture}, {spec.DiskDtype}, seed {spec.Seed}) to {Required("out")} — random weights");
            return 0;
        case "adapter":
            var targets = Get("targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj").Split(',', StringSplitOptions.RemoveEmptyEntries);
            int count = int.Parse(Get("count", "1"));
            if (count < 1)
                throw new ArgumentException($"--count {count} must be at least 1");
            // --count N writes N adapters (seeds seed..seed+N-1) as OUT/adapter-0000 ..., an adapter store for load tests.
            NewOutput("out");
            for (int i = 0; i < count; i++)
            {
                string outDir = count == 1 ? Required("out") : Path.Combine(Required("out"), $"adapter-{i:D4}");
                SyntheticAdapterWriter.Write(outDir, Required("model"), int.Parse(Get("rank", "8")), double.Parse(Get("alpha", "16")),
                    targets, ulong.Parse(Get("seed", "1")) + (ulong)i, options.ContainsKey("rslora"), options.ContainsKey("dora"));
            }

            Console.WriteLine($"wrote {count} LoRA adapter{(count > 1 ? "s" : "")} (r={Get("rank", "8")}, targets {string.Join(",", targets)}) to {Required("out")}");
            return 0;
        case "train-adapter":
            using (var loaded = Serving.Engine.Model.LoadedModel.Load(Required("model"), TorchSharp.torch.ScalarType.Float32, TorchSharp.torch.CPU, 4096))
            {
                var data = Serving.Authoring.Training.TrainingData.Read(Required("data"), loaded.Tokenizer, loaded.EosTokenIds[0]);
                var training = new Serving.Authoring.Training.LoraTrainingOptions
                {
                    Rank = int.Parse(Get("rank", "8")),
                    Alpha = double.Parse(Get("alpha", "16"), System.Globalization.CultureInfo.InvariantCulture),
                    Targets = Get("targets", "q_proj,v_proj").Split(',', StringSplitOptions.RemoveEmptyEntries),
                    Steps = int.Parse(Get("steps", "200")),
                    BatchSize = int.Parse(Get("batch", "8")),
                    LearningRate = double.Parse(Get("lr", "0.002"), System.Globalization.CultureInfo.InvariantCulture),
                    Seed = ulong.Parse(Get("seed", "1")),
                    UseDora = options.ContainsKey("dora"),
                };
                var progress = new Serving.Authoring.Training.TrainingProgressReporter(Console.Out, interactive: !Console.IsOutputRedirected);
                var trainer = new Serving.Authoring.Training.LoraTrainer(loaded, training) { Progress = progress.Report };
                var losses = trainer.Train(data, NewOutput("out"));
                Console.WriteLine($"wrote PEFT {(training.UseDora ? "DoRA" : "LoRA")} adapter (r={training.Rank}, {data.Count} examples, loss {losses[0]:F4} → {losses[^1]:F4}) to {Required("out")}");
            }

            return 0;
        default:
            Console.Error.WriteLine("usage: ModelGen model --preset tiny|bench --out DIR [--seed N] [--dtype f32|f16|bf16] [--arch llama|mistral|qwen2|qwen3|granite|phi3|gemma2|gemma3|mixtral|qwen2-moe|qwen3-moe|gpt-oss|olmo2|olmo3|embeddinggemma|granite-moe] [--mxfp4] [--shards N] [--tie]");
            Console.Error.WriteLine("       ModelGen adapter --model DIR --out DIR [--rank R] [--alpha A] [--targets q_proj,v_proj] [--seed N] [--rslora] [--dora] [--count N]");
            Console.Error.WriteLine("       ModelGen train-adapter --model DIR --data train.jsonl --out DIR [--rank R] [--alpha A] [--targets ...] [--steps N] [--batch B] [--lr X] [--seed N] [--dora]");
            return 2;
    }
}
catch (Exception ex) when (ex is ArgumentException or FormatException or IOException or Serving.Engine.Checkpoints.ModelLoadException)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 1;
}

string Get(string name, string fallback) => options.TryGetValue(name, out var v) ? v : fallback;

string Required(string name) => options.TryGetValue(name, out var v) ? v : throw new ArgumentException($"--{name} is required");

// An output folder that already holds files may be a model or an adapter someone needs: ModelGen writes only into a new
// or empty folder, never over what is there.
string NewOutput(string name)
{
    string dir = Required(name);
    if (File.Exists(dir) || (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any()))
        throw new ArgumentException($"--{name} {dir} exists and is not empty; ModelGen writes only into a new or empty folder");
    return dir;
}

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
