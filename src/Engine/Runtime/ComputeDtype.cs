namespace Serving.Engine.Runtime;

/// <summary>The dtype the model computes in; <see cref="Auto"/> is resolved by <see cref="TorchRuntime.ResolveDtype"/>.</summary>
public enum ComputeDtype
{
    Auto,
    Float32,
    BFloat16,
    Float16,
}
