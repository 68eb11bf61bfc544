using System.Text.Json.Nodes;
using CsCheck;
using Serving.AdapterStore.Peft;

namespace Serving.AdapterStore.Tests.Peft;

/// <summary>Generated adapter_config.json variants: the parser either accepts or throws its own validation error.</summary>
public sealed class PeftLoraConfigFuzzTests
{
    private static readonly string[] Fields =
        ["peft_type", "r", "lora_alpha", "target_modules", "use_rslora", "fan_in_fan_out", "rank_pattern", "alpha_pattern",
         "layers_to_transform", "layers_pattern", "bias", "use_dora", "modules_to_save", "base_model_name_or_path"];

    private static readonly string[] Values =
        ["null", "true", "false", "0", "-3", "8", "16.5", "1e309", "\"LORA\"", "\"none\"", "\"all\"", "\"layers\"", "\"(\"", "\".*q_proj\"",
         "[]", "[\"q_proj\"]", "[1, \"x\"]", "[null]", "{}", "{\"q_proj\": 4}", "{\"v_proj\": \"x\"}", "{\"(\": 2}", "[0, 1]", "\"\\u0000\""];

    [Fact]
    public void Parse_GeneratedConfigs_OnlyValidationErrors()
    {
        var edit = Gen.Select(Gen.Int[0, Fields.Length - 1], Gen.Int[0, Values.Length], Gen.Bool);
        edit.Array[0, 6].Sample(edits =>
        {
            var config = new JsonObject
            {
                ["peft_type"] = "LORA", ["r"] = 8, ["lora_alpha"] = 16, ["target_modules"] = new JsonArray("q_proj", "v_proj"), ["bias"] = "none",
            };
            foreach (var (field, value, remove) in edits)
            {
                if (remove && value == Values.Length)
                    config.Remove(Fields[field]);
                else
                    config[Fields[field]] = JsonNode.Parse(Values[value % Values.Length]);
            }

            try
            {
                var parsed = PeftLoraConfig.Parse(config.ToJsonString(), "fuzz");
                parsed.Targets("model.layers.0.self_attn.q_proj", 0);
                parsed.For("model.layers.0.self_attn.q_proj");
            }
            catch (AdapterFormatException)
            {
            }
        }, iter: 100_000);
    }

    [Fact]
    public void Parse_RandomText_OnlyValidationErrors() =>
        Gen.String.Sample(text =>
        {
            try
            {
                PeftLoraConfig.Parse(text, "fuzz");
            }
            catch (AdapterFormatException)
            {
            }
        }, iter: 20_000);
}
