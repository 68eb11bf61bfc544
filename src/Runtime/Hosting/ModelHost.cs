using Microsoft.Extensions.Options;
using Serving.AdapterStore;
using Serving.AdapterStore.Sources;
using Serving.Engine.Model;
using Serving.Engine.Quantization;
using Serving.Engine.Runtime;
using TorchSharp;

namespace Serving.Runtime.Hosting;

/// <summary>
/// Loads the served model when the host starts (before Kestrel listens), so a bad checkpoint stops start-up with
/// one clear message, and owns it for the process lifetime.
/// </summary>
/// <param name="options">Which model, dtype and device.</param>
/// <param name="adapterOptions">Adapter sources, slots and limits.</param>
/// <param name="logger">Start-up report.</param>
/// <param name="defaultModel">The model served when none is named (the server's demo model); null: one must be named.</param>
/// <param name="time">Registration times.</param>
/// <param name="kernels">The kernels the model may use (tests inject a faulty one); null: the defaults.</param>
public sealed class ModelHost(IOptions<ModelOptions> options, IOptions<AdapterStoreOptions> adapterOptions, ILogger<ModelHost> logger, IDefaultModel? defaultModel = null,
    TimeProvider? time = null, Serving.Engine.Kernels.KernelOptions? kernels = null)
    : IHostedService, IDisposable
{
    private LoadedModel? _model;
    private ServedModel? _served;

    internal LoadedModel Model => _model ?? throw new InvalidOperationException("the model is not loaded yet");

    /// <summary>The served model's tokenizer, chat template, limits and defaults (available once it is loaded).</summary>
    public ServedModel Served => _served ?? throw new InvalidOperationException("the model is not loaded yet");
    public bool IsLoaded => _model is not null;
    public string ModelId { get; private set; } = "";

    /// <summary>Every name <c>model</c> may give the base model: <see cref="ModelId"/>, then <see cref="ModelOptions.Aliases"/>.</summary>
    public IReadOnlyList<string> ModelNames => [ModelId, .. options.Value.Aliases.Where(a => a != ModelId).Distinct()];
    public DateTimeOffset LoadedAt { get; private set; }

    /// <summary>How the base weights are held: <c>none</c>, <c>int8</c> or <c>mxfp4</c> (<c>Serving:Model:Quantization</c>).</summary>
    public string QuantizationName => WeightQuantizationNames.Name(_quantization);

    private WeightQuantization _quantization;

    /// <summary>DoRA scales kept on disk for this model as served (available once it is loaded).</summary>
    internal Generation.DoraScaleFiles? DoraScaleFiles { get; private set; }

    /// <summary>Adapter sources by URI scheme: local paths and <c>s3://</c> (with its local disk cache).</summary>
    internal AdapterSourceSet Sources { get; private set; } = AdapterSourceSet.LocalOnly();

    /// <summary>Every adapter the server can run (local store folders and run-time registrations).</summary>
    public AdapterCatalog Adapters { get; private set; } = new(null, new AdapterStore.Registry.AdapterRegistry(null));

    /// <summary>Registration, removal and reloads of adapters for this model (available once the model is loaded).</summary>
    public AdapterLifecycle Lifecycle => _lifecycle ?? throw new InvalidOperationException("the model is not loaded yet");

    private AdapterLifecycle? _lifecycle;

    /// <summary>Adapters announced but not ready yet (the default model's trained adapters, made after start-up).</summary>
    public PreparingAdapters Preparing { get; } = new(time ?? TimeProvider.System);

    private readonly CancellationTokenSource _stopping = new();

    /// <summary>At most one "Loading…" line per this interval while the weights are read.</summary>
    private static readonly TimeSpan LoadProgressEvery = TimeSpan.FromSeconds(2);
    private Task _preparation = Task.CompletedTask;

    /// <summary>Ends when the default adapters that are made after start-up are all made (at once when there are none).</summary>
    public Task AdaptersPrepared => _preparation;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        string path;
        string? adapterRoot = adapterOptions.Value.Path;
        string cacheRoot = o.CacheDirectory ?? ServingCache.DefaultRoot();
        DefaultModelFolders? defaults = null;
        if (string.IsNullOrEmpty(o.Path))
        {
            defaults = (defaultModel ?? throw new InvalidOperationException("no model path is configured (--model) and this host has no default model"))
                .Ensure(cacheRoot, !string.IsNullOrEmpty(adapterRoot));
            path = defaults.ModelPath;
            adapterRoot = string.IsNullOrEmpty(adapterRoot) ? defaults.AdapterRoot : adapterRoot;
            ModelId = o.Name ?? defaults.Name;
        }
        else
        {
            path = Path.GetFullPath(o.Path);
            ModelId = o.Name ?? Path.GetFileName(path.TrimEnd(Path.DirectorySeparatorChar));
        }

        if (o.CpuThreads > 0)
            torch.set_num_threads(o.CpuThreads);
        var device = TorchRuntime.ParseDevice(o.Device);
        var dtype = TorchRuntime.ResolveDtype(TorchRuntime.ParseDtype(o.Dtype), device);
        _quantization = WeightQuantizationNames.Parse(o.Quantization);
        var started = System.Diagnostics.Stopwatch.StartNew();
        var lastReport = System.Diagnostics.Stopwatch.StartNew();
        _model = LoadedModel.Load(path, dtype, device, o.MaxContext, kernels: kernels, tokenizerDirectory: o.Tokenizer is { Length: > 0 } t ? Path.GetFullPath(t) : null,
            configOverrides: o.ParsedHfOverrides(), progress: (read, total) =>
        {
            if (lastReport.Elapsed < LoadProgressEvery || read == total)
                return;
            lastReport.Restart();
            logger.LogInformation("Loading {Path}: {Read} of {Total} MiB of weights read ({Percent:F0}%) in {Seconds:F0} s",
                path, read >> 20, total >> 20, 100.0 * read / total, started.Elapsed.TotalSeconds);
        }, quantization: _quantization);
        _served = new ServedModel(_model, o.ChatTemplate is { Length: > 0 } template ? ChatTemplateOption.Load(template, _model) : null,
            GenerationConfigOption.Effective(_model.GenerationDefaults, o.GenerationConfig, o.GenerationOverrides), o.ChatTemplateContentFormat);
        DoraScaleFiles = new Generation.DoraScaleFiles(Path.Combine(cacheRoot, "dora-scales"),
            Generation.DoraScaleFiles.BaseFingerprint(path, $"{dtype} {device} {WeightQuantizationNames.Name(_quantization)}"),
            adapterOptions.Value.DoraScaleCacheBytes, logger);
        LoadedAt = DateTimeOffset.UtcNow;
        var c = _model.Config;
        logger.LogInformation("Loaded {Architecture} from {Path} as '{Id}': {Layers} layers, hidden {Hidden}, {Heads}/{KvHeads} heads, vocab {Vocab}, {Dtype} on {Device}, {MiB} MiB of weights in {Seconds:F1} s",
            c.Architecture, path, ModelId, c.NumLayers, c.HiddenSize, c.NumHeads, c.NumKvHeads, c.VocabSize, dtype, device, _model.Model.Weights.TotalBytes >> 20, started.Elapsed.TotalSeconds);
        if (_model.EmbeddingOnly)
            logger.LogInformation("An embedding model (a bare transformer, no language-model head): /v1/embeddings only, last-token pooling; generation requests are refused");
        if (c.Experts is { } moe)
            logger.LogInformation("Mixture of experts: {Experts} experts of intermediate size {Size}, {TopK} per token, in {Sparse} of {Layers} layers; adapters may adapt the attention (q/k/v/o) and the experts (their slots allocated as adapters first adapt them)",
                moe.Experts, moe.IntermediateSize, moe.TopK, c.NumLayers - moe.DenseLayers.Count, c.NumLayers);
        if (_model.Model.Weights.Mxfp4Projections is { Count: > 0 } mxfp4)
            logger.LogInformation("MXFP4 experts: {Count} expert projections held as the checkpoint ships them, {Bytes} MiB ({Dtype} would take {Dense} MiB); kernel: {Kernel}",
                mxfp4.Count, mxfp4.Bytes >> 20, dtype, mxfp4.Bytes * 32 / 17 * (dtype == torch.ScalarType.Float32 ? 4 : 2) >> 20,
                System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? "AVX-512" : "scalar");
        if (c.IsLanguageModelOfMultimodal)
            logger.LogInformation("A multimodal checkpoint: its language model is served for text; the vision tower is not loaded, and image inputs (and adapters' vision-tower weights) are not served");

        if (_quantization == WeightQuantization.Int8)
            logger.LogInformation("int8 weights: {Before} MiB in {Dtype} → {After} MiB quantized (projections and lm_head, per output row); kernel: {Kernel}",
                _model.Model.Weights.UnquantizedBytes(dtype) >> 20, dtype, _model.Model.Weights.TotalBytes >> 20, Int8Linear.Kernel);
        if (dtype == torch.ScalarType.BFloat16 && device.type == DeviceType.CPU && _quantization == WeightQuantization.None)
            logger.LogInformation("bf16 projections: {Path} (AMX kernel: {Status}); bf16 LoRA rows: {LoraStatus}",
                _model.Model.Weights.Layers[0].Qkv.IsPacked ? "AMX-packed weights" : "libtorch", Serving.Engine.Kernels.AmxNative.Status,
                Serving.Engine.Kernels.LoraNative.IsAvailable ? "AVX512-BF16 kernel" : $"C# kernel ({Serving.Engine.Kernels.LoraNative.Status})");
        if (device.type == DeviceType.CPU && _quantization == WeightQuantization.None)
            logger.LogInformation("Small-batch projections (decode steps of ≤ {Rows} rows): {Kernel}; element-wise and decode-attention kernels: {Vectors}",
                Serving.Engine.Kernels.SmallBatchGemv.MaxRows, Serving.Engine.Kernels.SmallBatchGemv.Status,
                Serving.Engine.Kernels.CpuVectorKernels.Status);
        var a = adapterOptions.Value;
        string registryPath = a.RegistryPath ?? Path.Combine(cacheRoot, $"adapter-registry-{ModelId}.json");
        Adapters = new AdapterCatalog(string.IsNullOrEmpty(adapterRoot) ? null : new LocalFolderAdapterSource(adapterRoot), new AdapterStore.Registry.AdapterRegistry(registryPath));
        Sources = AdapterSourceSet.Create(a, a.DiskCachePath ?? Path.Combine(cacheRoot, "adapter-cache"));
        _lifecycle = new AdapterLifecycle(Adapters, Sources, a, c, ModelNames, time ?? TimeProvider.System);
        foreach (var (record, newVersion, error) in _lifecycle.VerifyRegisteredVersions())
            if (error is null)
                logger.LogWarning("Adapter {Adapter}: its files changed in place since it was registered (version {Old} → {New}); the new version is served",
                    record.Id, record.Version, newVersion);
            else
                logger.LogWarning("Adapter {Adapter} ({Source}): {Error}; requests for it fail until it is registered again", record.Id, record.Source, error);
        var arena = _model.Model.EnableAdapters(a.MaxDeviceSlots, a.MaxRank, (long)a.MaxExpertSlotMiB << 20);
        logger.LogInformation("Adapters: {Count} available (store {Root}, registry {Registry}); {Slots} device slots of rank ≤ {Rank} ({MiB} MiB)",
            Adapters.List().Count, adapterRoot ?? "none", registryPath, a.MaxDeviceSlots, a.MaxRank, arena.Bytes >> 20);

        if (c.SlidingWindow is int window && window < o.MaxContext)
            logger.LogInformation("config.json sets sliding_window={Window}: in {Sliding} of {Layers} layers each token attends to the last {Window} positions of its context (up to {Context})",
                window, c.NumLayers - c.FullAttentionLayers.Count, c.NumLayers, window, o.MaxContext);
        await RegisterStartupAdaptersAsync(a, cancellationToken);
        if (defaults is { AdapterRoot: not null } && adapterRoot == defaults.AdapterRoot)
            _preparation = PrepareDefaultAdaptersAsync(defaults);
    }

    /// <summary>
    /// The adapters named at start-up (<c>--lora-modules</c>), registered as an admin's shared ones for this process only (as
    /// vLLM's: a start without the switch no longer serves them); one that cannot be stops start-up naming it.
    /// </summary>
    private async Task RegisterStartupAdaptersAsync(AdapterStoreOptions a, CancellationToken ct)
    {
        foreach (var module in a.Modules)
        {
            try
            {
                var id = Lifecycle.ParseNewName(module.Name);
                AdapterLifecycle.CheckPath(module.Path);
                var (record, previous) = await Lifecycle.RegisterAsync(id, module.Path!, AdapterStore.Files.AdapterReadPolicy.Trusted(a.MaxAdapterBytes, a.ReadTimeout), null, ct,
                    processOnly: true);
                if (previous is not null && previous.Source != record.Source)
                    logger.LogWarning("Adapter {Adapter}: --lora-modules serves {Path} for this process over its run-time registration from {Source}, which stays registered",
                        record.Id, record.Source, previous.Source);
                logger.LogInformation("Adapter {Adapter} registered at start-up from {Path}: {Shape}", record.Id, record.Source, record.Shape);
            }
            catch (AdapterStoreException ex)
            {
                throw new Serving.Engine.Checkpoints.ModelLoadException($"--lora-modules {module.Name}={module.Path}: {ex.Message}", ex);
            }
        }
    }

    private async Task PrepareDefaultAdaptersAsync(DefaultModelFolders defaults)
    {
        try
        {
            await defaultModel!.PrepareAdaptersAsync(defaults, Preparing, _stopping.Token);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // The base model and the ready adapters keep being served; what was not made is no longer announced.
            logger.LogError(e, "Preparing the default adapters failed: {Error}", e.Message);
            foreach (var id in Preparing.Pending)
                Preparing.Done(id);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await _preparation.WaitAsync(cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
    }

    public void Dispose()
    {
        _stopping.Dispose();
        Sources.Dispose();
        _model?.Dispose();
    }
}
