namespace Serving.Engine.Configuration;

public enum RopeScalingKind
{
    None,
    Linear,
    Llama3,
}
