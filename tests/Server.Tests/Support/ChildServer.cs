using System.Diagnostics;
using System.Net;
using System.Text;

namespace Serving.Server.Tests.Support;

/// <summary>
/// The server as its own OS process (<c>dotnet Serving.Server.dll ARGS</c> from the build output) on a free loopback port,
/// for what an in-process host cannot show: being killed with SIGKILL and restarted.
/// </summary>
public sealed class ChildServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ChildServer(Process process, Uri address)
    {
        _process = process;
        Address = address;
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(2) };
    }

    public Uri Address { get; }
    public HttpClient Http { get; }
    public bool HasExited => _process.HasExited;

    private string Output
    {
        get
        {
            lock (_output)
                return _output.ToString();
        }
    }

    /// <summary>Starts the server and waits until <c>/readyz</c> answers 200.</summary>
    public static async Task<ChildServer> StartAsync(params string[] args)
    {
        int port = FreePorts.Next();
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = AppContext.BaseDirectory };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Serving.Server.dll"));
        foreach (string a in args)
            start.ArgumentList.Add(a);
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add($"http://127.0.0.1:{port}");
        var server = new ChildServer(Process.Start(start)!, new Uri($"http://127.0.0.1:{port}"));
        server._process.OutputDataReceived += (_, e) => server.Append(e.Data);
        server._process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        server._process.BeginOutputReadLine();
        server._process.BeginErrorReadLine();
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (server.HasExited)
                throw new InvalidOperationException($"server exited with {server._process.ExitCode}:\n{server.Output}");
            if (deadline.Elapsed > TimeSpan.FromSeconds(120))
                throw new TimeoutException($"server not ready after 120 s:\n{server.Output}");
            try
            {
                using var ready = await server.Http.GetAsync("/readyz");
                if (ready.StatusCode == HttpStatusCode.OK)
                    return server;
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }
    }

    /// <summary>SIGKILL: no shutdown hooks, no flushing, as when the kernel's OOM killer or a node failure ends the process.</summary>
    public async Task KillAsync()
    {
        _process.Kill();
        await _process.WaitForExitAsync();
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_output)
            _output.AppendLine(line);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (!_process.HasExited)
            await KillAsync();
        _process.Dispose();
    }
}
