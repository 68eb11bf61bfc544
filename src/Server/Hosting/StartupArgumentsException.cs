namespace Serving.Server.Hosting;

/// <summary>Start-up refused: the command line or the configuration names options the server does not have.</summary>
public sealed class StartupArgumentsException(IReadOnlyList<string> problems) : Exception(string.Join("; ", problems))
{
    public IReadOnlyList<string> Problems { get; } = problems;
}
