using System.Diagnostics;

namespace Serving.Runtime.Observability;

/// <summary>
/// The <c>Serving</c> activity source: one <c>generate</c> span per request (tenant, adapters, tokens, finish) with three
/// children covering its path — <c>queue</c> (arrival → admitted to the batch), <c>prefill</c> (→ first token),
/// <c>decode</c> (→ last token). Spans cost nothing unless a listener (the OpenTelemetry SDK when an OTLP endpoint is
/// configured, or a test) subscribes.
/// </summary>
public static class ServingTracing
{
    public const string SourceName = "Serving";
    internal static readonly ActivitySource Source = new(SourceName);

    /// <summary>Records the children of <paramref name="parent"/> from the timestamps a request collected.</summary>
    internal static void RecordPhases(Activity parent, DateTimeOffset arrived, DateTimeOffset? admitted, DateTimeOffset? firstToken, DateTimeOffset ended)
    {
        Child(parent, "queue", arrived, admitted ?? ended);
        if (admitted is DateTimeOffset a)
            Child(parent, "prefill", a, firstToken ?? ended);
        if (firstToken is DateTimeOffset f)
            Child(parent, "decode", f, ended);
    }

    private static void Child(Activity parent, string name, DateTimeOffset start, DateTimeOffset end)
    {
        using var child = Source.StartActivity(name, ActivityKind.Internal, parent.Context, startTime: start);
        child?.SetEndTime(end.UtcDateTime);
    }
}
