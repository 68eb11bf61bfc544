using System.Diagnostics;
using System.Reflection;
using Serving.AdapterStore;
using Serving.Authoring.Synthetic;
using Serving.Server.Hosting;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Deployment;

/// <summary>
/// The Dockerfile (Docker cannot run here): lint rules on the file, and its entrypoint, environment and
/// HEALTHCHECK run for real — <c>dotnet Serving.Server.dll</c> started from the build output with the image's ENV
/// (paths moved into a temporary folder), probed with the image's healthcheck command, stopped with SIGTERM.
/// </summary>
public sealed class ContainerImageTests : IDisposable
{
    private static readonly string DockerfilePath = Path.Combine(RepositoryRoot.Path, "Dockerfile");
    private readonly List<DockerfileInstruction> _instructions = DockerfileInstruction.Parse(DockerfilePath);
    private readonly string _root = TestDirectories.Path("image");

    private List<DockerfileInstruction> Final => [.. _instructions.Where(i => i.Stage == "final")];

    internal static Dictionary<string, string> Environment(IEnumerable<DockerfileInstruction> instructions)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var i in instructions.Where(i => i.Keyword == "ENV"))
        {
            foreach (var pair in i.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                int eq = pair.IndexOf('=');
                Assert.True(eq > 0, $"Dockerfile:{i.Line}: ENV must use KEY=value ({pair})");
                env[pair[..eq]] = pair[(eq + 1)..];
            }
        }

        return env;
    }

    [Fact]
    public void Dockerfile_FinalStage_IsNonRootWithHealthcheckAndExecEntrypoint()
    {
        Assert.Contains(_instructions, i => i.Keyword == "FROM" && i.Arguments.StartsWith("runtime-${TORCH_BACKEND}", StringComparison.Ordinal));
        var user = Final.Last(i => i.Keyword == "USER").Arguments;
        Assert.NotEqual("root", user);
        Assert.NotEqual("0", user);
        Assert.Equal(["dotnet", "Serving.Server.dll"], Final.Single(i => i.Keyword == "ENTRYPOINT").ExecForm()!);
        var healthcheck = Final.Single(i => i.Keyword == "HEALTHCHECK");
        Assert.Equal(["dotnet", "Serving.Server.dll", HealthCheckCommand.Verb], healthcheck.ExecForm("CMD ")!);
        var env = Environment(Final);
        Assert.Equal(new Uri(env["ASPNETCORE_URLS"]).Port.ToString(System.Globalization.CultureInfo.InvariantCulture), Final.Single(i => i.Keyword == "EXPOSE").Arguments);
        Assert.Equal(HealthCheckCommand.DefaultUrl, env["SERVING_HEALTHCHECK_URL"]);
        // Build arguments select the backend and base images; the CUDA stage installs the same non-root user id.
        Assert.Contains(_instructions, i => i.Keyword == "ARG" && i.Arguments == "TORCH_BACKEND=cpu");
        Assert.Contains(_instructions, i => i.Stage == "runtime-cuda" && i.Arguments.Contains("--uid 1654", StringComparison.Ordinal));
        Assert.Contains(_instructions, i => i.Keyword == "RUN" && i.Arguments.Contains("-p:TorchBackend=${TORCH_BACKEND}", StringComparison.Ordinal));
    }

    [Fact]
    public void Dockerfile_Lint_HadolintRules()
    {
        foreach (var i in _instructions)
        {
            Assert.False(i.Keyword == "ADD", $"Dockerfile:{i.Line}: use COPY, not ADD (DL3020)");
            Assert.False(i.Keyword == "FROM" && i.Arguments.Split(' ')[0].EndsWith(":latest", StringComparison.Ordinal), $"Dockerfile:{i.Line}: pin the base image tag (DL3007)");
            Assert.False(i.Keyword == "WORKDIR" && !i.Arguments.StartsWith('/'), $"Dockerfile:{i.Line}: WORKDIR must be absolute (DL3000)");
            Assert.False(i.Keyword == "RUN" && i.Arguments.Contains("apt-get install", StringComparison.Ordinal) && !i.Arguments.Contains("--no-install-recommends", StringComparison.Ordinal),
                $"Dockerfile:{i.Line}: apt-get install without --no-install-recommends (DL3015)");
            Assert.False(i.Keyword == "RUN" && i.Arguments.Contains("sudo ", StringComparison.Ordinal), $"Dockerfile:{i.Line}: no sudo (DL3004)");
            Assert.False(i.Keyword is "CMD" or "ENTRYPOINT" && i.ExecForm() is null, $"Dockerfile:{i.Line}: use the exec form (DL3025)");
        }

        Assert.Equal(1, _instructions.Count(i => i.Keyword == "ENTRYPOINT"));
        Assert.Equal(1, _instructions.Count(i => i.Keyword == "HEALTHCHECK"));
    }

    [Fact]
    public void Dockerfile_ServingEnvironment_NamesRealOptions()
    {
        var env = Environment(Final).Where(kv => kv.Key.StartsWith("Serving__", StringComparison.Ordinal)).ToArray();
        Assert.NotEmpty(env);
        foreach (var (key, _) in env)
            Assert.True(ConfigurationKeys.Exists(key), $"Dockerfile ENV {key} does not bind to any option");
        var volumes = Final.Single(i => i.Keyword == "VOLUME").ExecForm()!;
        foreach (var (key, value) in env.Where(kv => kv.Value.StartsWith('/')))
            Assert.True(volumes.Any(v => value.StartsWith(v, StringComparison.Ordinal)), $"{key}={value} is not on a declared volume");
    }

    [Fact]
    public async Task Entrypoint_StartedAsTheImageDoes_PassesItsHealthcheckAndStopsOnSigterm()
    {
        string model = Path.Combine(_root, "models", "model");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 61 });
        SyntheticAdapterWriter.Write(Path.Combine(_root, "adapters", "mounted"), model, 4, 8, ["q_proj"], 3);
        int port = FreePorts.Next();
        string probeUrl = $"http://127.0.0.1:{port}/readyz";
        // Not listening yet: the probe fails.
        Assert.Equal(1, (await Run(HealthCheckCommand.Verb, probeUrl)).ExitCode);

        var start = Dotnet(null);
        foreach (var (key, value) in Environment(Final))
            start.Environment[key] = value.StartsWith('/') ? Path.Combine(_root, value.TrimStart('/')) : value;
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["SERVING_HEALTHCHECK_URL"] = probeUrl;
        start.Environment["Serving__Model__Dtype"] = "float32";
        using var server = Process.Start(start)!;
        var output = new System.Text.StringBuilder();
        server.OutputDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        server.ErrorDataReceived += (_, e) => { lock (output) output.AppendLine(e.Data); };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        try
        {
            var deadline = Stopwatch.StartNew();
            int code;
            // The image's HEALTHCHECK command with no argument reads SERVING_HEALTHCHECK_URL.
            while ((code = (await RunWithEnvironment(probeUrl, HealthCheckCommand.Verb)).ExitCode) != 0)
            {
                if (server.HasExited)
                    Assert.Fail($"server exited ({server.ExitCode}):\n{output}");
                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(120), $"not healthy after 120 s:\n{output}");
                await Task.Delay(250);
            }

            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            string models = await http.GetStringAsync("/v1/models");
            Assert.Contains("\"mounted\"", models, StringComparison.Ordinal);                 // Serving__Adapters__Path
            lock (output)
                Assert.Contains($"registry {Path.Combine(_root, "var", "lib", "serving", "adapter-registry.json")}", output.ToString(), StringComparison.Ordinal);

            using (var kill = Process.Start("kill", ["-TERM", server.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
                await kill.WaitForExitAsync();
            using var stopped = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await server.WaitForExitAsync(stopped.Token);
            Assert.True(server.ExitCode == 0, $"exit code {server.ExitCode} after SIGTERM:\n{output}");
        }
        finally
        {
            if (!server.HasExited)
                server.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public async Task Healthcheck_BadUrl_ExitsTwoWithMessage()
    {
        var (code, stderr) = await Run(HealthCheckCommand.Verb, "not a url");
        Assert.Equal(2, code);
        Assert.Contains("is not an http(s) URL", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Entrypoint_ModelPathNotAFolder_ExitsTwoNamingThePath()
    {
        var (code, stderr) = await Run("--model", "/nonexistent/model");

        Assert.Equal(2, code);
        Assert.Contains("serving: invalid configuration: Serving:Model:Path '/nonexistent/model' is not a folder", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", stderr, StringComparison.Ordinal);
    }

    private static ProcessStartInfo Dotnet(string? healthEnvironment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = AppContext.BaseDirectory };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Serving.Server.dll"));
        foreach (var a in args)
            start.ArgumentList.Add(a);
        if (healthEnvironment is not null)
            start.Environment["SERVING_HEALTHCHECK_URL"] = healthEnvironment;
        return start;
    }

    private static Task<(int ExitCode, string Stderr)> Run(params string[] args) => RunWithEnvironment(null, args);

    private static async Task<(int ExitCode, string Stderr)> RunWithEnvironment(string? healthEnvironment, params string[] args)
    {
        using var process = Process.Start(Dotnet(healthEnvironment, args))!;
        string stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, stderr);
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
