using System.Security.Cryptography;

namespace Serving.AdapterStore.Registry;

/// <summary>An adapter version: SHA-256 over its config and weights files (first 16 hex digits).</summary>
internal static class AdapterContentHash
{
    private static readonly string[] Files = ["adapter_config.json", "adapter_model.safetensors"];

    public static string Compute(string folder)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        foreach (string name in Files)
        {
            using var stream = File.OpenRead(Path.Combine(folder, name));
            int read;
            while ((read = stream.Read(buffer)) > 0)
                hash.AppendData(buffer, 0, read);
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }
}
