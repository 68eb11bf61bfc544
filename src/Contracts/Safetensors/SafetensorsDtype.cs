namespace Serving.Contracts.Safetensors;

/// <summary>Element types a safetensors header may name that the engine can read.</summary>
public enum SafetensorsDtype
{
    F32,
    F16,
    BF16,
    I64,
    I32,

    /// <summary>Bytes: gpt-oss's MXFP4 expert blocks and scales.</summary>
    U8,
}
