using Serving.LoadTests.Planning;

namespace Serving.LoadTests.Clients;

/// <summary>Sends one planned request, streaming, and measures it; never throws for a server-side failure (that is an outcome).</summary>
internal interface ILoadClient : IDisposable
{
    Task<RequestOutcome> SendAsync(PlannedRequest request, double startedAtSeconds, CancellationToken cancellationToken);
}
