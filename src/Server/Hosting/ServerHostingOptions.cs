namespace Serving.Server.Hosting;

/// <summary><c>Serving</c>: the settings of the process itself (the other sections are the subsystems').</summary>
public sealed class ServerHostingOptions
{
    public const string Section = "Serving";

    /// <summary>On SIGTERM: seconds running requests get to finish after the server stops accepting.</summary>
    public double ShutdownGraceSeconds { get; set; } = 30;

    /// <summary>OpenTelemetry traces.</summary>
    public TracingOptions Tracing { get; set; } = new();
}
