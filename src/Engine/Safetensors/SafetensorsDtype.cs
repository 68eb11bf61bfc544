namespace Serving.Engine.Safetensors;

/// <summary>Element types a safetensors header may name that the engine can read.</summary>
internal enum SafetensorsDtype
{
    F32,
    F16,
    BF16,
    I64,
    I32,
}
