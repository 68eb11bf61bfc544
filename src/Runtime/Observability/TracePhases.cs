using System.Diagnostics;

namespace Serving.Runtime.Observability;

/// <summary>Closes a request's <c>generate</c> span however the request ends: tags the outcome and records its phases.</summary>
internal readonly struct TracePhases(Activity? activity, Func<(DateTimeOffset Arrived, DateTimeOffset? Admitted, DateTimeOffset? FirstToken, int Generated)> state)
    : IDisposable
{
    public void Dispose()
    {
        if (activity is null)
            return;
        var (arrived, admitted, firstToken, generated) = state();
        activity.SetTag("serving.generated_tokens", generated);
        ServingTracing.RecordPhases(activity, arrived, admitted, firstToken, DateTimeOffset.UtcNow);
    }
}
