using System.Text.Json.Nodes;
using Serving.Contracts.Safetensors;

namespace Serving.Authoring.Synthetic;

/// <summary>
/// A Granite MoE folder (<c>GraniteMoeForCausalLM</c>: IBM's granite-3.x-1b-a400m / 3b-a800m) at a test's scale: Granite's
/// multipliers over Mixtral's layers, the experts held as parallel-expert tensors — <c>block_sparse_moe.input_linear
/// [E, 2·I, hidden]</c> (each expert's gate rows, then its up rows), <c>output_linear [E, hidden, I]</c> — and the router
/// at <c>block_sparse_moe.router.layer</c>. Written as the Mixtral twin holding the same weights, then restacked; the twin
/// (Granite's multipliers on Mixtral's names, which the scalar reference reads) is what a check compares against.
/// </summary>
public static class GraniteMoeCheckpoint
{
    public const string Architecture = "GraniteMoeForCausalLM";

    /// <summary>Writes the folder; <paramref name="mixtralTwin"/> leaves it as the Mixtral-named twin.</summary>
    public static void Write(string dir, SyntheticModelSpec spec, bool mixtralTwin = false)
    {
        SyntheticModelWriter.Write(dir, spec with { Architecture = "MixtralForCausalLM", DiskDtype = SafetensorsDtype.F32, Shards = 1 });
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        int headDim = config["head_dim"]?.GetValue<int>() ?? config["hidden_size"]!.GetValue<int>() / config["num_attention_heads"]!.GetValue<int>();
        config["embedding_multiplier"] = 12.0;               // granite-3.1-1b-a400m's
        config["attention_multiplier"] = 1.0 / headDim;
        config["residual_multiplier"] = 0.22;
        config["logits_scaling"] = 6.0;
        if (!mixtralTwin)
        {
            config["architectures"] = new JsonArray(Architecture);
            config["model_type"] = "granitemoe";
            Restack(Path.Combine(dir, "model.safetensors"), config["num_local_experts"]!.GetValue<int>());
        }

        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(new() { WriteIndented = true }));
    }

    private static void Restack(string path, int experts)
    {
        byte[] content = File.ReadAllBytes(path);
        var file = SafetensorsFile.Parse(path, content);
        byte[] Bytes(string name) => content.AsSpan((int)file.Tensors[name].DataOffset, (int)file.Tensors[name].ByteLength).ToArray();
        byte[] Stacked(IEnumerable<string> names) => [.. names.SelectMany(Bytes)];
        var entries = new List<SafetensorsWriter.Entry>();
        foreach (var t in file.Tensors.Values.OrderBy(t => t.DataOffset))
        {
            int at = t.Name.IndexOf(".block_sparse_moe.", StringComparison.Ordinal);
            if (at < 0)
            {
                entries.Add(SafetensorsWriter.Entry.Of(t.Name, t.Dtype, t.Shape, Bytes(t.Name)));
                continue;
            }

            string layer = t.Name[..(at + ".block_sparse_moe.".Length)];
            if (t.Name == layer + "gate.weight")
                entries.Add(SafetensorsWriter.Entry.Of(layer + "router.layer.weight", t.Dtype, t.Shape, Bytes(t.Name)));
            else if (t.Name == layer + "experts.0.w1.weight")
            {
                long inter = t.Shape[0], hidden = t.Shape[1];
                entries.Add(SafetensorsWriter.Entry.Of(layer + "input_linear.weight", t.Dtype, [experts, 2 * inter, hidden],
                    Stacked(Enumerable.Range(0, experts).SelectMany(e => new[] { $"{layer}experts.{e}.w1.weight", $"{layer}experts.{e}.w3.weight" }))));
                entries.Add(SafetensorsWriter.Entry.Of(layer + "output_linear.weight", t.Dtype, [experts, hidden, inter],
                    Stacked(Enumerable.Range(0, experts).Select(e => $"{layer}experts.{e}.w2.weight"))));
            }
        }

        SafetensorsWriter.Write(path, entries);
    }
}
