using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Serving.AdapterStore.Registry;
using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;
using Serving.Engine.Lora;

namespace Serving.Runtime.Generation;

/// <summary>
/// DoRA scales kept on disk in the server's cache: one safetensors file per adapter version (<c>{key}.safetensors</c>,
/// a tensor <c>{layer}.{module}.scale</c> <c>[out]</c> float32 per DoRA module, and <c>.shift</c> where the projection
/// has a bias), under a folder named for the served base weights (<see cref="BaseFingerprint"/>). A cold fill of a DoRA
/// adapter whose norms were taken before, by this process or an earlier one, reads its scales back instead of
/// streaming every base weight through one [out, in]·[in, r] product per module, so after the first fill a DoRA
/// adapter costs a LoRA fill plus one small read. The key is a hash of the owner, the name and the version (itself a
/// hash of the adapter's bytes): no adapter ever reads scales taken for another, not even one with the same bytes, and
/// nothing a tenant names becomes part of a path. The files are the server's own: one that does not read, or does not fit the
/// adapter, is ignored (the norms are taken again and the file replaced), never an error for the request.
/// </summary>
/// <param name="root">The cache's own folder (every base model's files are in a folder of it named for the model).</param>
/// <param name="baseFingerprint">The served base weights (<see cref="BaseFingerprint"/>): this object's files are in
/// <c>{root}/{baseFingerprint}</c>.</param>
/// <param name="capacityBytes">What all base models' files in <paramref name="root"/> may take together; the least
/// recently used are deleted beyond it. 0: nothing is kept.</param>
/// <param name="logger">Where unreadable or unwritable files are reported.</param>
public sealed partial class DoraScaleFiles(string root, string baseFingerprint, long capacityBytes, ILogger logger)
{
    private readonly string _folder = Path.Combine(root, HexDigest().IsMatch(baseFingerprint) ? baseFingerprint
        : throw new ArgumentException("a base fingerprint is a hex digest", nameof(baseFingerprint)));

    /// <summary>The cache's folder for one served base model.</summary>
    public string Folder => _folder;

    /// <summary>
    /// A name for the base weights as served (16 hex digits): the model folder's path, how it is served
    /// (<paramref name="servedAs"/>: dtype, device, quantization), config.json's bytes, and each weights file's name,
    /// length and modification time, so a model replaced in place, or served otherwise, gets other files.
    /// </summary>
    public static string BaseFingerprint(string modelPath, string servedAs)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string text) => hash.AppendData(Encoding.UTF8.GetBytes(text + "\n"));
        Add(Path.GetFullPath(modelPath));
        Add(servedAs);
        string config = Path.Combine(modelPath, "config.json");
        if (File.Exists(config))
            hash.AppendData(File.ReadAllBytes(config));
        foreach (var file in new DirectoryInfo(modelPath).EnumerateFiles("*.safetensors").OrderBy(f => f.Name, StringComparer.Ordinal))
            Add($"{file.Name} {file.Length} {file.LastWriteTimeUtc.Ticks}");
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }

    /// <summary>The scales kept for <paramref name="record"/>'s version, read as <paramref name="adapter"/>, one per DoRA module in its module order; null when none fit.</summary>
    public IReadOnlyList<DoraRowScale>? TryRead(AdapterRecord record, LoraAdapterWeights adapter)
    {
        string path = PathOf(record);
        if (!File.Exists(path))
            return null;
        try
        {
            var file = SafetensorsFile.Parse(path, File.ReadAllBytes(path));
            var scales = new List<DoraRowScale>();
            foreach (var m in adapter.Modules.Where(m => m.Magnitude is not null))
            {
                string name = TensorName(m);
                if (!file.Tensors.TryGetValue(name + ".scale", out var scaleInfo))
                    throw new FormatException($"no tensor {name}.scale");
                var scale = ReadFloats(file, scaleInfo);
                var shift = file.Tensors.TryGetValue(name + ".shift", out var shiftInfo) ? ReadFloats(file, shiftInfo) : new float[scale.Length];
                scales.Add(new DoraRowScale(scale, shift));
            }

            if (file.Tensors.Count(t => t.Key.EndsWith(".scale", StringComparison.Ordinal)) != scales.Count)
                throw new FormatException("it holds scales of other modules");
            return scales;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or SafetensorsFormatException)
        {
            logger.LogWarning("DoRA scales {Path} are not usable ({Error}); the norms are taken again", path, ex.Message);
            return null;
        }
        finally
        {
            Touch(path);
        }
    }

    /// <summary>Reports kept scales the adapter's modules did not take (<paramref name="reason"/>); the norms are taken again.</summary>
    public void Rejected(string adapter, string reason) =>
        logger.LogWarning("DoRA scales kept in {Folder} for adapter {Adapter} do not fit it ({Error}); the norms are taken again", _folder, adapter, reason);

    /// <summary>Keeps <paramref name="scales"/> (one per DoRA module of <paramref name="adapter"/>, in its module order) for <paramref name="record"/>'s version.</summary>
    public void Write(AdapterRecord record, LoraAdapterWeights adapter, IReadOnlyList<DoraRowScale> scales)
    {
        if (capacityBytes <= 0)
            return;
        string path = PathOf(record);
        var modules = adapter.Modules.Where(m => m.Magnitude is not null).ToArray();
        var entries = new List<SafetensorsWriter.Entry>();
        for (int i = 0; i < modules.Length; i++)
        {
            string name = TensorName(modules[i]);
            entries.Add(Floats(name + ".scale", scales[i].Scale));
            if (scales[i].Shift.AsSpan().ContainsAnyExcept(0f))
                entries.Add(Floats(name + ".shift", scales[i].Shift));
        }

        // Written under a name of its own and renamed into place: a reader (here or in a replica sharing the cache) sees a
        // whole file or none.
        string partial = $"{path}.{Guid.NewGuid():N}.part";
        try
        {
            Directory.CreateDirectory(_folder);
            SafetensorsWriter.Write(partial, entries, new Dictionary<string, string> { ["adapter_version"] = record.Version });
            File.Move(partial, path, overwrite: true);
            Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("DoRA scales for adapter {Adapter} version {Version} were not kept in {Folder}: {Error}", record.Id, record.Version, _folder, ex.Message);
            TryDelete(partial);
        }
    }

    /// <summary>Marks a file as used now: the least recently used go first (<see cref="Trim"/>), and access times are often not kept.</summary>
    private static void Touch(string path)
    {
        try
        {
            if (File.Exists(path))
                File.SetLastWriteTimeUtc(path, DateTime.UtcNow);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Deletes the least recently used files of every base model until what is left fits the budget.</summary>
    private void Trim()
    {
        long total = 0;
        var kept = new DirectoryInfo(root).EnumerateDirectories().Where(d => HexDigest().IsMatch(d.Name))
            .SelectMany(d => d.EnumerateFiles("*.safetensors")).Where(f => HexDigest().IsMatch(Path.GetFileNameWithoutExtension(f.Name)));
        foreach (var file in kept.OrderByDescending(f => f.LastWriteTimeUtc))
        {
            total += file.Length;
            if (total > capacityBytes)
                TryDelete(file.FullName);
        }
    }

    /// <summary>The file of <paramref name="record"/>'s version: named for a hash of its owner, name and version.</summary>
    private string PathOf(AdapterRecord record)
    {
        string key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{record.Tenant}\n{record.Id}\n{record.Version}")))[..32];
        return Path.Combine(_folder, key + ".safetensors");
    }

    private static string TensorName(LoraModuleWeights m) => $"{m.Layer}.{LoraTargets.ModuleName(m.Target)}";

    private static SafetensorsWriter.Entry Floats(string name, float[] values) =>
        SafetensorsWriter.Entry.Of(name, SafetensorsDtype.F32, [values.Length], System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    private static float[] ReadFloats(SafetensorsFile file, SafetensorsTensorInfo info)
    {
        if (info.Dtype != SafetensorsDtype.F32 || info.Shape.Length != 1)
            throw new FormatException($"a tensor is {info.Dtype} of {info.Shape.Length} dimensions, not a float32 vector");
        var values = new float[info.Shape[0]];
        file.ReadInto(info, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
            File.Delete(path + ".tmp");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }

    [GeneratedRegex("^[0-9a-f]{8,64}$")]
    private static partial Regex HexDigest();
}
