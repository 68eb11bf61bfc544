namespace Serving.AdapterStore;

/// <summary>
/// The adapter store's one error type: what went wrong (<see cref="Failure"/>), about which input (<see cref="Subject"/>),
/// and a message for the caller. For <see cref="AdapterStoreFailure.BadRequest"/> the message is the rule the input broke
/// ("is required"), to follow the field name the caller used; otherwise it is a whole sentence. Messages never hold bytes
/// of an adapter's files or whether a path outside the caller's roots exists.
/// </summary>
public sealed class AdapterStoreException(AdapterStoreFailure failure, AdapterStoreSubject subject, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public AdapterStoreFailure Failure { get; } = failure;
    public AdapterStoreSubject Subject { get; } = subject;
}
