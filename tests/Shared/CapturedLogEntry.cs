using Microsoft.Extensions.Logging;

namespace Serving.Tests.Shared;

/// <summary>One log entry written by the server under test.</summary>
public sealed record CapturedLogEntry(LogLevel Level, string Category, string Message, Exception? Exception)
{
    public override string ToString() => $"{Level} {Category}: {Message}{(Exception is null ? "" : " — " + Exception.GetType().Name + ": " + Exception.Message)}";
}
