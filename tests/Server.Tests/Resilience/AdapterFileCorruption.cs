using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace Serving.Server.Tests.Resilience;

/// <summary>Ways an adapter folder gets damaged in storage, applied to a copy of a good one.</summary>
public static class AdapterFileCorruption
{
    public const string Weights = "adapter_model.safetensors", Config = "adapter_config.json";

    public static readonly string[] Kinds =
        ["truncated", "tail-truncated", "header-bytes-flipped", "header-length-lies", "shape-swapped", "data-nan", "config-garbage", "config-rank-lies", "weights-missing"];

    /// <summary>Copies <paramref name="good"/> to <paramref name="target"/> and damages the copy as <paramref name="kind"/> says.</summary>
    public static void Apply(string kind, string good, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(good))
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)), overwrite: true);
        string weights = Path.Combine(target, Weights), config = Path.Combine(target, Config);
        byte[] bytes = File.ReadAllBytes(weights);
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        switch (kind)
        {
            case "truncated":
                File.WriteAllBytes(weights, bytes[..(bytes.Length * 2 / 3)]);
                break;
            case "tail-truncated":
                // Four bytes short: the read fills the same pooled buffer size class as the good file just read, so the
                // missing tail is exactly where that file's bytes would be if a buffer were reused uncleared or read past.
                File.WriteAllBytes(weights, bytes[..^4]);
                break;
            case "header-bytes-flipped":
                for (int i = 8 + headerLength / 3; i < 8 + headerLength / 3 + 16; i++)
                    bytes[i] ^= 0x5A;
                File.WriteAllBytes(weights, bytes);
                break;
            case "header-length-lies":
                BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)bytes.Length * 4);
                File.WriteAllBytes(weights, bytes);
                break;
            case "shape-swapped":
                File.WriteAllBytes(weights, SwapFirstShape(bytes, headerLength));
                break;
            case "data-nan":
                for (int i = 8 + headerLength + 64; i < 8 + headerLength + 64 + 16; i++)
                    bytes[i] = 0xFF;                          // f32 0xFFFFFFFF is a NaN
                File.WriteAllBytes(weights, bytes);
                break;
            case "config-garbage":
                File.WriteAllText(config, "{\"peft_type\": \"LORA\", \"r\": ");
                break;
            case "config-rank-lies":
                var json = JsonNode.Parse(File.ReadAllText(config))!;
                json["r"] = (int)json["r"]! * 2;
                File.WriteAllText(config, json.ToJsonString());
                break;
            case "weights-missing":
                File.Delete(weights);
                break;
            default:
                throw new ArgumentException($"unknown corruption {kind}");
        }
    }

    /// <summary>Reverses the first two-dimensional tensor's shape ([r, in] → [in, r]): same byte count, wrong layout.</summary>
    private static byte[] SwapFirstShape(byte[] bytes, int headerLength)
    {
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, headerLength))!.AsObject();
        var first = header.First(kv => kv.Key != "__metadata__" && kv.Value!["shape"]!.AsArray().Count == 2 && (long)kv.Value["shape"]![0]! != (long)kv.Value["shape"]![1]!);
        var shape = first.Value!["shape"]!.AsArray();
        first.Value["shape"] = new JsonArray((long)shape[1]!, (long)shape[0]!);
        byte[] newHeader = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (newHeader.Length + 7) / 8 * 8;
        var result = new byte[8 + padded + bytes.Length - 8 - headerLength];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)padded);
        newHeader.CopyTo(result, 8);
        result.AsSpan(8 + newHeader.Length, padded - newHeader.Length).Fill((byte)' ');
        bytes.AsSpan(8 + headerLength).CopyTo(result.AsSpan(8 + padded));
        return result;
    }
}
