using Serving.Authoring.Synthetic;
using Serving.Contracts;
using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Engine.Lora;
using Serving.Engine.Model;
using Serving.Engine.Sampling;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Lora;

/// <summary>
/// A DoRA adapter's scales taken before its slot fill, on another thread (as the runtime does on the thread pool): the
/// fill then reads no base weight and holds the same scales as a fill that took them itself.
/// </summary>
public sealed class DoraPreparationTests : IDisposable
{
    private readonly string _root = TestDirectories.Create("dora-prepare");
    private readonly LoadedModel _loaded;

    public DoraPreparationTests()
    {
        string dir = Path.Combine(_root, "model");
        SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Seed = 31 });
        _loaded = LoadedModel.Load(dir, ScalarType.Float32, CPU, 64);
    }

    public void Dispose()
    {
        _loaded.Dispose();
        TestDirectories.Delete(_root);
    }

    private ModelConfig Config => _loaded.Config;

    /// <summary>Slots over the model's base weights that count how often a DoRA fill asks for one.</summary>
    private LoraSlotArena CountingArena(Func<int> increment) =>
        new(Config, 2, 16, ScalarType.Float32, CPU, (layer, target) =>
        {
            increment();
            return _loaded.Model.Weights.Projection(Config, layer, target);
        });

    private LoraAdapterWeights Dora(ulong seed)
    {
        var adapter = RandomAdapters.Create(Config, "d", 8, [LoraTarget.Q, LoraTarget.Down], seed, scale: 2f);
        var random = new SeededRandom(seed + 100);
        return adapter with
        {
            Modules = adapter.Modules.Select(m => m with
            {
                Magnitude = [.. Enumerable.Range(0, LoraTargets.Shape(Config, m.Target).Out).Select(_ => (float)(0.5 + random.NextDouble()))],
            }).ToList(),
        };
    }

    [Fact]
    public async Task PrepareDora_OnAnotherThread_FillReadsNoBaseWeightAndMatchesAFillThatTookThem()
    {
        int reads = 0;
        using var prepared = CountingArena(() => Interlocked.Increment(ref reads));
        using var direct = new LoraSlotArena(Config, 2, 16, ScalarType.Float32, CPU, (l, t) => _loaded.Model.Weights.Projection(Config, l, t));
        var adapter = Dora(5);

        await Task.Run(() => prepared.PrepareDora(adapter));
        Assert.Equal(adapter.Modules.Count, reads);
        prepared.Load(1, adapter);
        Assert.Equal(adapter.Modules.Count, reads);
        direct.Load(1, adapter);

        foreach (var m in adapter.Modules)
        {
            var a = prepared.Module(m.Layer, m.Target);
            var b = direct.Module(m.Layer, m.Target);
            Assert.True(a.IsDora[1]);
            using var ga = a.DoraScale[1];
            using var gb = b.DoraScale[1];
            using var sa = a.DoraShift[1];
            using var sb = b.DoraShift[1];
            Assert.Equal(gb.data<float>().ToArray(), ga.data<float>().ToArray());
            Assert.Equal(sb.data<float>().ToArray(), sa.data<float>().ToArray());
        }
    }

    [Fact]
    public void PrepareDora_PlainLoraAdapter_ReadsNothing()
    {
        int reads = 0;
        using var arena = CountingArena(() => Interlocked.Increment(ref reads));
        arena.PrepareDora(RandomAdapters.Create(Config, "plain", 8, LoraTargets.All, 6, scale: 1f));
        Assert.Equal(0, reads);
    }

    [Fact]
    public void PrepareDora_MagnitudeOfWrongLength_ThrowsNamingTheModule()
    {
        using var arena = CountingArena(() => 0);
        var adapter = Dora(7);
        var broken = adapter with { Modules = [adapter.Modules[0] with { Magnitude = [1f, 2f] }, .. adapter.Modules.Skip(1)] };

        var e = Assert.Throws<ArgumentException>(() => arena.PrepareDora(broken));
        Assert.Contains($"layer {adapter.Modules[0].Layer} {LoraTargets.ModuleName(adapter.Modules[0].Target)}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PrepareDora_NonFiniteMagnitude_ThrowsSayingTheScaleIsNotFinite()
    {
        using var arena = CountingArena(() => 0);
        var adapter = Dora(8);
        var m = adapter.Modules[0];
        var broken = adapter with { Modules = [m with { Magnitude = [.. m.Magnitude!.Select(_ => float.NaN)] }] };

        var e = Assert.Throws<ArgumentException>(() => arena.PrepareDora(broken));
        Assert.Contains("not finite", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PrepareDora_OneModuleOfManyNotFinite_ThrowsTheModulesArgumentExceptionNotAnAggregate()
    {
        using var arena = CountingArena(() => 0);
        var adapter = Dora(9);
        int last = adapter.Modules.Count - 1;
        var m = adapter.Modules[last];
        var broken = adapter with { Modules = [.. adapter.Modules.Take(last), m with { Magnitude = [.. m.Magnitude!.Select(_ => float.PositiveInfinity)] }] };

        var e = Assert.Throws<ArgumentException>(() => arena.PrepareDora(broken));
        Assert.Contains($"layer {m.Layer} {LoraTargets.ModuleName(m.Target)}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UseDoraScales_ScalesTakenByAnotherArena_FillReadsNoBaseWeightAndMatchesAFillThatTookThem()
    {
        int reads = 0;
        using var given = CountingArena(() => Interlocked.Increment(ref reads));
        using var direct = new LoraSlotArena(Config, 2, 16, ScalarType.Float32, CPU, (l, t) => _loaded.Model.Weights.Projection(Config, l, t));
        var adapter = Dora(10);
        var scales = direct.DoraScales(adapter);

        given.UseDoraScales(adapter, [.. scales.Select(s => new DoraRowScale([.. s.Scale], [.. s.Shift]))]);
        given.Load(0, adapter);
        direct.Load(0, adapter);

        Assert.Equal(0, reads);
        foreach (var m in adapter.Modules)
        {
            using var ga = given.Module(m.Layer, m.Target).DoraScale[0];
            using var gb = direct.Module(m.Layer, m.Target).DoraScale[0];
            Assert.Equal(gb.data<float>().ToArray(), ga.data<float>().ToArray());
        }
    }

    [Fact]
    public void UseDoraScales_OneScaleTooShort_ThrowsNamingTheModuleAndKeepsNone()
    {
        int reads = 0;
        using var arena = CountingArena(() => Interlocked.Increment(ref reads));
        using var direct = new LoraSlotArena(Config, 2, 16, ScalarType.Float32, CPU, (l, t) => _loaded.Model.Weights.Projection(Config, l, t));
        var adapter = Dora(11);
        var scales = direct.DoraScales(adapter).ToList();
        var last = adapter.Modules[^1];
        scales[^1] = new DoraRowScale(scales[^1].Scale[1..], scales[^1].Shift[1..]);

        var e = Assert.Throws<ArgumentException>(() => arena.UseDoraScales(adapter, scales));
        Assert.Contains($"layer {last.Layer} {LoraTargets.ModuleName(last.Target)}", e.Message, StringComparison.Ordinal);
        arena.Load(0, adapter);
        Assert.Equal(adapter.Modules.Count, reads);   // the first module's good scale was not kept either
    }

    [Fact]
    public void UseDoraScales_NotFiniteOrMissing_Throws()
    {
        using var arena = CountingArena(() => 0);
        using var direct = new LoraSlotArena(Config, 2, 16, ScalarType.Float32, CPU, (l, t) => _loaded.Model.Weights.Projection(Config, l, t));
        var adapter = Dora(12);
        var scales = direct.DoraScales(adapter).ToList();

        Assert.Throws<ArgumentException>(() => arena.UseDoraScales(adapter, scales.Take(1).ToList()));
        scales[0] = scales[0] with { Scale = [.. scales[0].Scale.Select((v, i) => i == 3 ? float.NaN : v)] };
        Assert.Contains("not finite", Assert.Throws<ArgumentException>(() => arena.UseDoraScales(adapter, scales)).Message, StringComparison.Ordinal);
    }
}
