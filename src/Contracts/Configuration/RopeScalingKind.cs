namespace Serving.Contracts.Configuration;

public enum RopeScalingKind
{
    None,
    Linear,
    Llama3,
    Yarn,
    LongRope,
}
