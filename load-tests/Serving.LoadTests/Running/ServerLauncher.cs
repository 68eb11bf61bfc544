using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Running;

/// <summary>
/// Starts a server configuration as a child process exactly as the container image does (<c>dotnet
/// Serving.Server.dll ARGS</c>, or an executable), on a free loopback port, and waits for <c>/readyz</c>.
/// Disposing kills it; its last output lines go into any start-up error.
/// </summary>
internal sealed class ServerLauncher : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Queue<string> _tail = new();

    private ServerLauncher(Process process, Uri address)
    {
        _process = process;
        Address = address;
    }

    public Uri Address { get; }

    /// <summary>The server's process (the .NET runtime's, also for a <c>dotnet X.dll</c> start).</summary>
    public int ProcessId => _process.Id;

    public static async Task<ServerLauncher> StartAsync(string server, string arguments, TimeSpan readyTimeout, CancellationToken cancellationToken)
    {
        if (!File.Exists(server))
            throw new ScenarioException($"--server: {server} does not exist (build it: dotnet build -c Release src/Server)");
        int port = FreePort();
        var start = server.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? new ProcessStartInfo("dotnet") : new ProcessStartInfo(server);
        if (start.FileName == "dotnet")
            start.ArgumentList.Add(server);
        foreach (var arg in SplitArguments(arguments))
            start.ArgumentList.Add(arg);
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add($"http://127.0.0.1:{port}");
        start.RedirectStandardOutput = start.RedirectStandardError = true;
        var process = Process.Start(start) ?? throw new ScenarioException($"could not start {server}");
        var launcher = new ServerLauncher(process, new Uri($"http://127.0.0.1:{port}"));
        process.OutputDataReceived += (_, e) => launcher.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => launcher.Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var http = new HttpClient { BaseAddress = launcher.Address, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < readyTimeout)
        {
            if (process.HasExited)
            {
                int exitCode = process.ExitCode;
                process.WaitForExit();   // drains the redirected output into the tail
                await launcher.DisposeAsync();
                throw new ScenarioException($"server exited with code {exitCode} before it was ready:\n{launcher.Tail()}");
            }

            try
            {
                using var response = await http.GetAsync("/readyz", cancellationToken);
                if (response.IsSuccessStatusCode)
                    return launcher;
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
            }

            await Task.Delay(200, cancellationToken);
        }

        await launcher.DisposeAsync();
        throw new ScenarioException($"server not ready within {readyTimeout.TotalSeconds:F0} s:\n{launcher.Tail()}");
    }

    /// <summary>Shell-like split: whitespace separates, single or double quotes group.</summary>
    public static List<string> SplitArguments(string text)
    {
        var args = new List<string>();
        var current = new StringBuilder();
        char quote = '\0';
        bool any = false;
        foreach (char c in text)
        {
            if (quote != '\0')
            {
                if (c == quote)
                    quote = '\0';
                else
                    current.Append(c);
            }
            else if (c is '"' or '\'')
            {
                quote = c;
                any = true;
            }
            else if (char.IsWhiteSpace(c))
            {
                if (any || current.Length > 0)
                    args.Add(current.ToString());
                current.Clear();
                any = false;
            }
            else
            {
                current.Append(c);
            }
        }

        if (quote != '\0')
            throw new ScenarioException($"unclosed quote in server arguments: {text}");
        if (any || current.Length > 0)
            args.Add(current.ToString());
        return args;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void Keep(string? line)
    {
        if (line is null)
            return;
        lock (_tail)
        {
            _tail.Enqueue(line);
            while (_tail.Count > 40)
                _tail.Dequeue();
        }
    }

    private string Tail()
    {
        lock (_tail)
            return string.Join('\n', _tail);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
