namespace Serving.LoadTests.Planning;

internal enum RequestKind
{
    /// <summary>The base model, no adapter.</summary>
    Base,

    /// <summary>One named adapter.</summary>
    Adapter,

    /// <summary><c>model: "auto"</c>: the server routes.</summary>
    Auto,

    /// <summary>A weighted mix of adapters over the base model.</summary>
    Mixture,
}
