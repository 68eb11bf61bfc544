using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Serving.Tests.Shared;

/// <summary>
/// Every log entry the server writes at or above <see cref="LogLevel.Information"/>, kept in memory so a test can assert
/// that a storm of faults left no unexpected warnings or errors behind.
/// </summary>
public sealed class CapturedLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<CapturedLogEntry> _entries = new();

    public IReadOnlyCollection<CapturedLogEntry> Entries => _entries;

    /// <summary>Adds this provider to the server's logging.</summary>
    public void AddTo(WebApplicationBuilder builder) => builder.Logging.AddProvider(this);

    /// <summary>Adds this provider to a host's logging.</summary>
    public void AddTo(ILoggingBuilder logging) => logging.AddProvider(this);

    /// <summary>
    /// Entries at <paramref name="level"/> or above, optionally without the ones a test expects. Kestrel's start-up warning
    /// that cleartext HTTP/2 is off is always left out: <c>CleartextHttp2Detection</c> makes it untrue (gRPC tests prove it).
    /// </summary>
    public IReadOnlyList<CapturedLogEntry> AtLeast(LogLevel level, Func<CapturedLogEntry, bool>? expected = null) =>
        _entries.Where(e => e.Level >= level && !IsCleartextHttp2StartupWarning(e) && (expected is null || !expected(e))).ToList();

    private static bool IsCleartextHttp2StartupWarning(CapturedLogEntry e) =>
        e.Category == "Microsoft.AspNetCore.Server.Kestrel" && e.Message.StartsWith("HTTP/2 is not enabled for", StringComparison.Ordinal);

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(CapturedLogs owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
                owner._entries.Enqueue(new CapturedLogEntry(logLevel, category, formatter(state, exception), exception));
        }
    }
}
