namespace Serving.Engine.Configuration;

internal enum RopeScalingKind
{
    None,
    Linear,
    Llama3,
}
