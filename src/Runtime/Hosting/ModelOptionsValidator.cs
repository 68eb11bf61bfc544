using Microsoft.Extensions.Options;
using Serving.Engine.Quantization;
using Serving.Engine.Runtime;

namespace Serving.Runtime.Hosting;

internal sealed class ModelOptionsValidator : IValidateOptions<ModelOptions>
{
    public ValidateOptionsResult Validate(string? name, ModelOptions o)
    {
        var errors = new List<string>();
        if (!string.IsNullOrEmpty(o.Path) && !Directory.Exists(o.Path))
            errors.Add($"Serving:Model:Path '{o.Path}' is not a folder");
        if (!string.IsNullOrEmpty(o.Tokenizer) && !File.Exists(System.IO.Path.Combine(o.Tokenizer, "tokenizer.json")))
            errors.Add($"Serving:Model:Tokenizer (--tokenizer) '{o.Tokenizer}' is not a folder holding tokenizer.json");
        if (!string.IsNullOrWhiteSpace(o.HfOverrides) && o.ParsedHfOverrides() is null)
            errors.Add("Serving:Model:HfOverrides (--hf-overrides) must be a JSON object, e.g. '{\"max_position_embeddings\": 65536}'");
        foreach (string alias in o.Aliases.Where(a => a is not { Length: > 0 and <= 256 } || a == "auto" || a.Any(char.IsWhiteSpace)))
            errors.Add($"Serving:Model:Aliases (--served-model-name): '{alias}' cannot name the model (1 to 256 characters without spaces, and not 'auto', which asks for routing)");
        if (o.ChatTemplateContentFormat is not ("auto" or "string" or "openai"))
            errors.Add($"Serving:Model:ChatTemplateContentFormat (--chat-template-content-format) must be auto, string or openai, not '{o.ChatTemplateContentFormat}'");
        Try(() => TorchRuntime.ParseDtype(o.Dtype), errors);
        string device = o.Device.Trim().ToLowerInvariant();
        if (device != "cpu" && device != "cuda" && !System.Text.RegularExpressions.Regex.IsMatch(device, @"^cuda:\d+$"))
            errors.Add($"Serving:Model:Device '{o.Device}' is not supported (expected cpu, cuda or cuda:N)");
        try
        {
            var quantization = WeightQuantizationNames.Parse(o.Quantization);
            if (quantization == WeightQuantization.Mxfp4 && device != "cpu")
                errors.Add($"Serving:Model:Quantization mxfp4 holds MXFP4 weights for the CPU's kernel; device '{o.Device}' is not supported: serve the dequantized weights there (quantization none)");
            if (quantization == WeightQuantization.Int8 && device != "cpu")
                errors.Add($"Serving:Model:Quantization int8 runs on the CPU only; device '{o.Device}' is not supported: the .NET binding (TorchSharp 0.107) exposes no int8 weight-only matmul for it (libtorch's _weight_int8pack_mm is not bound); serve bfloat16 there");
        }
        catch (ArgumentException ex)
        {
            errors.Add(ex.Message);
        }

        if (GenerationConfigOption.Problem(o.GenerationConfig) is { } generationConfig)
            errors.Add(generationConfig);
        errors.AddRange(o.GenerationOverrides.Validate());
        if (o.MaxLogprobs is < 0 or > Contracts.Generation.SamplingParams.MaxLogprobs)
            errors.Add($"Serving:Model:MaxLogprobs (--max-logprobs) must be in [0, {Contracts.Generation.SamplingParams.MaxLogprobs}]");
        if (o.MaxSequences is < 1 or > 1024)
            errors.Add("Serving:Model:MaxSequences must be in [1, 1024]");
        if (o.MaxContext is < 16 or > 1_048_576)
            errors.Add("Serving:Model:MaxContext must be in [16, 1048576]");
        if (o.CpuThreads < 0)
            errors.Add("Serving:Model:CpuThreads must be 0 (all cores) or positive");
        if (o.NativeHeapTrimSeconds is < 0 or > 86_400 || double.IsNaN(o.NativeHeapTrimSeconds))
            errors.Add("Serving:Model:NativeHeapTrimSeconds must be 0 (off) or in (0, 86400]");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void Try(Action parse, List<string> errors)
    {
        try
        {
            parse();
        }
        catch (ArgumentException ex)
        {
            errors.Add(ex.Message);
        }
    }
}
