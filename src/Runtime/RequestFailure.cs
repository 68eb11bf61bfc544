namespace Serving.Runtime;

/// <summary>Why the runtime refused or ended a request; the API layer turns each into its HTTP status and gRPC code.</summary>
public enum RequestFailure
{
    /// <summary>The request can never run as given (bad sampling parameters, an empty prompt).</summary>
    Invalid,

    /// <summary>The caller may not use what it named (another tenant's adapter).</summary>
    Forbidden,

    /// <summary>What the request names does not exist (an adapter).</summary>
    NotFound,

    /// <summary>What the request names exists but cannot be used (an adapter's files are malformed or do not fit the model).</summary>
    Unprocessable,

    /// <summary>The queue is full; the same request may succeed later.</summary>
    Overloaded,

    /// <summary>The engine or an adapter source is not available now.</summary>
    Unavailable,

    /// <summary>The request ran past its deadline.</summary>
    TimedOut,

    /// <summary>The engine failed this request alone (its rows were rerun apart from the batch's).</summary>
    Failed,
}
