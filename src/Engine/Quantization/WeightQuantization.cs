namespace Serving.Engine.Quantization;

/// <summary>How the base model's projection weights are held (<c>Serving:Model:Quantization</c>).</summary>
public enum WeightQuantization
{
    /// <summary>In the compute dtype, as loaded.</summary>
    None,

    /// <summary>
    /// int8, symmetric per output row, quantized at load from the checkpoint's values: every linear projection and the
    /// lm_head (a tied embedding with it); norms, an untied embedding, the KV cache and adapters stay in the compute dtype.
    /// </summary>
    Int8,

    /// <summary>
    /// A checkpoint's MXFP4 weights (gpt-oss's experts) held as they ship, 4.25 bits a weight, on the CPU; every other
    /// projection in the compute dtype. Without it they are dequantized to the compute dtype at load.
    /// </summary>
    Mxfp4,
}
