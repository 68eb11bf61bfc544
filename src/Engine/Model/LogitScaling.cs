using Serving.Contracts.Configuration;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>What a model's last step does to its logits after the lm_head.</summary>
internal static class LogitScaling
{
    /// <summary>
    /// The float32 logits <c>[rows, vocab]</c> in place as the model's last step has them: Granite's divided by its
    /// <c>logits_scaling</c>, Gemma 2's soft-capped, <c>z = cap·tanh(z / cap)</c>.
    /// </summary>
    public static void Apply(Tensor logits, ModelConfig c)
    {
        if (c.LogitsScaling != 1)
            logits.TimesInPlace(1 / c.LogitsScaling);
        if (c.FinalLogitSoftcap is double cap)
            logits.TimesInPlace(1 / cap).tanh_().TimesInPlace(cap);
    }
}
