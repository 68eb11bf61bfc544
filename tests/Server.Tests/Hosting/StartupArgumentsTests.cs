using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Serving.Server.Hosting;

namespace Serving.Server.Tests.Hosting;

/// <summary>Mistyped switches and settings end start-up naming them; <c>--help</c> lists every setting from the options classes.</summary>
public sealed class StartupArgumentsTests
{
    private static IConfiguration Configuration(params (string Key, string Value)[] settings) =>
        new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key, (string?)s.Value))).Build();

    [Fact]
    public void ArgumentProblems_MistypedSwitches_NameEachAndTheClosestKnown()
    {
        var problems = StartupArguments.ArgumentProblems(["--max-sequence", "64", "--dtyp", "float32", "--quantisation", "int8", "--quantize", "int8"]);

        Assert.Equal(4, problems.Count);
        Assert.Contains("'--max-sequence'; did you mean '--max-sequences'?", problems[0], StringComparison.Ordinal);
        Assert.Contains("'--dtyp'; did you mean '--dtype'?", problems[1], StringComparison.Ordinal);
        Assert.Contains("'--quantisation'; did you mean '--quantization'?", problems[2], StringComparison.Ordinal);
        Assert.Contains("'--quantize'", problems[3], StringComparison.Ordinal);
    }

    [Fact]
    public void ArgumentProblems_KnownSwitchesFlagsHostAndServingKeys_None()
    {
        Assert.Empty(StartupArguments.ArgumentProblems([
            "--model", "/m", "--dtype=float32", "--no-prefix-caching", "--max-sequences", "4", "--urls", "http://127.0.0.1:0",
            "--Serving:Adapters:S3:Region", "eu", "--Logging:LogLevel:Default", "Warning",
        ]));
    }

    [Fact]
    public void ArgumentProblems_StrayValue_Named()
    {
        var problems = StartupArguments.ArgumentProblems(["--dtype", "float32", "float16"]);

        Assert.Equal(["unexpected argument 'float16' (options are --name value)"], problems);
    }

    [Fact]
    public void SpeculativeConfig_VllmNgramConfig_ReadIntoTheSpeculationSettings()
    {
        var problems = new List<string>();

        var settings = SpeculativeConfigArgument.Settings("""{"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_max": 3, "prompt_lookup_min": 1}""", problems);

        Assert.Empty(problems);
        Assert.Equal(["--Serving:Speculation:Tokens", "5", "--Serving:Speculation:PromptLookupMax", "3", "--Serving:Speculation:PromptLookupMin", "1",
            "--Serving:Speculation:Method", "Ngram"], settings);
        Assert.Empty(StartupArguments.ArgumentProblems(["--speculative-config", """{"model": "[ngram]", "num_speculative_tokens": 3}""", "--dtype", "float32"]));
        Assert.Empty(StartupArguments.ArgumentProblems(["""--speculative-config={"method": "ngram"}"""]));
        Assert.Equal(["--Serving:Speculation:Method", "Suffix"], SpeculativeConfigArgument.Settings("""{"method": "suffix"}""", problems));
    }

    [Theory]
    [InlineData("""{"method": "eagle", "model": "yuhuili/EAGLE-LLaMA3-Instruct-8B"}""", "method \"eagle\" is not supported")]
    [InlineData("""{"model": "meta-llama/Llama-3.2-1B", "num_speculative_tokens": 5}""", "model \"meta-llama/Llama-3.2-1B\" is not supported")]
    [InlineData("""{"method": "ngram", "disable_by_batch_size": 4}""", "'disable_by_batch_size' is not supported")]
    [InlineData("""{"method": "ngram", "num_speculative_tokens": "5"}""", "num_speculative_tokens must be an integer")]
    [InlineData("""{"num_speculative_tokens": 5}""", "needs \"method\": \"ngram\"")]
    [InlineData("""[1]""", "must be a JSON object")]
    [InlineData("""{method: ngram}""", "not JSON")]
    public void SpeculativeConfig_WhatThisServerDoesNotDo_AProblemNamingIt(string json, string problem)
    {
        var problems = StartupArguments.ArgumentProblems(["--speculative-config", json]);

        Assert.Contains(problems, p => p.StartsWith("--speculative-config", StringComparison.Ordinal) && p.Contains(problem, StringComparison.Ordinal));
    }

    [Fact]
    public void StructuredOutputsConfig_VllmKeys_TheirSettings()
    {
        var problems = new List<string>();

        var settings = StructuredOutputsConfigArgument.Settings("""{"enable_in_reasoning": true, "reasoning_parser": "qwen3", "backend": "auto"}""", problems);

        Assert.Empty(problems);
        Assert.Equal(["--Serving:Chat:StructuredOutputsInReasoning", "true", "--Serving:Chat:ReasoningParser", "qwen3"], settings);
        Assert.Empty(StartupArguments.ArgumentProblems(["""--structured-outputs-config={"enable_in_reasoning": false}""", "--dtype", "float32"]));
    }

    [Theory]
    [InlineData("""{"backend": "xgrammar"}""", "backend \"xgrammar\" is not available")]
    [InlineData("""{"disable_any_whitespace": true}""", "'disable_any_whitespace' is not supported")]
    [InlineData("""{"enable_in_reasoning": "yes"}""", "enable_in_reasoning must be true or false")]
    [InlineData("""[]""", "must be a JSON object")]
    public void StructuredOutputsConfig_WhatThisServerDoesNotDo_AProblemNamingIt(string json, string problem)
    {
        var problems = StartupArguments.ArgumentProblems(["--structured-outputs-config", json]);

        Assert.Contains(problems, p => p.StartsWith("--structured-outputs-config", StringComparison.Ordinal) && p.Contains(problem, StringComparison.Ordinal));
        Assert.Contains(StartupArguments.ArgumentProblems(["--structured-outputs-config"]), p => p.Contains("needs a JSON value", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Start_SpeculativeConfig_ServesWithNgramDrafts()
    {
        string cache = Support.TestDirectories.Path("speculative-config"), model = Path.Combine(cache, "model");
        Serving.Authoring.Synthetic.SyntheticModelWriter.Write(model, new Serving.Authoring.Synthetic.SyntheticModelSpec { Preset = Serving.Authoring.Synthetic.ModelPreset.Tiny, Seed = 5 });
        await using var server = await Support.ServerProcess.StartAsync("--model", model, "--cache-dir", cache, "--dtype", "float32", "--max-context", "256",
            "--speculative-config", """{"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_min": 1}""");
        try
        {
            var options = server.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Serving.Runtime.Speculation.SpeculationOptions>>().Value;
            Assert.Equal((Serving.Runtime.Speculation.SpeculationMethod.Ngram, 3, 1), (options.Method, options.Tokens, options.PromptLookupMin));
        }
        finally
        {
            Support.TestDirectories.Delete(cache);
        }
    }

    [Fact]
    public void SettingProblems_UnknownServingKeys_NamedWithTheClosestKnown()
    {
        var problems = StartupArguments.SettingProblems(Configuration(
            ("Serving:Model:Dtpe", "float32"), ("Serving:Model:Dtype", "float32"), ("Serving:Auth:Keys:0:Tenant", "a"),
            ("Serving:Auth:Keys:0:Rol", "Admin"), ("Serving:Quantization", "int8"), ("Logging:LogLevel:Default", "Debug")));

        Assert.Equal(3, problems.Count);
        Assert.Contains(problems, p => p.Contains("'Serving:Model:Dtpe'; did you mean 'Serving:Model:Dtype'?", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("'Serving:Auth:Keys:0:Rol'; did you mean 'Serving:Auth:Keys:*:Role'?", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("'Serving:Quantization'", StringComparison.Ordinal));
    }

    [Fact]
    public void Help_EverySetting_ListedWithItsDefaultAndSwitch()
    {
        string help = StartupArguments.Help();

        foreach (var entry in OptionCatalog.Entries)
            Assert.Contains(entry.Key, help, StringComparison.Ordinal);
        Assert.Matches(@"--max-sequences, --max-num-seqs\s+Serving:Model:MaxSequences\s+integer \(default 8\)", help);     // vLLM's name beside ours
        Assert.Matches(@"Serving:Batching:PrefixCaching\s+true\|false \(default true\)", help);
        Assert.Contains("Serving:Auth:Keys:*:Role", help, StringComparison.Ordinal);
        Assert.Contains(OptionCatalog.Entries, e => e.Key == "Serving:Model:NativeHeapTrimSeconds" && e.Default == "10");
    }

    [Fact]
    public void SettingProblems_EveryServingVariableTheManifestsSet_Known()
    {
        var names = Directory.GetFiles(Path.Combine(Support.RepositoryRoot.Path, "deploy"), "*.yaml", SearchOption.AllDirectories)
            .SelectMany(f => System.Text.RegularExpressions.Regex.Matches(File.ReadAllText(f), @"^\s*(?:- name: )?(Serving__[A-Za-z0-9_]+):?", System.Text.RegularExpressions.RegexOptions.Multiline).Select(m => m.Groups[1].Value))
            .Distinct().ToList();

        Assert.NotEmpty(names);
        Assert.Empty(StartupArguments.SettingProblems(Configuration([.. names.Select(n => (n.Replace("__", ":", StringComparison.Ordinal), "x"))])));
    }

    [Fact]
    public async Task Main_MistypedOption_ExitsWithCode2NamingIt()
    {
        string server = Path.Combine(AppContext.BaseDirectory, "Serving.Server.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (string arg in new[] { server, "--max-sequence", "64", "--dtyp", "float32" })
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        string stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));

        Assert.Equal(2, process.ExitCode);
        Assert.Contains("unknown option '--max-sequence'; did you mean '--max-sequences'?", stderr, StringComparison.Ordinal);
        Assert.Contains("unknown option '--dtyp'; did you mean '--dtype'?", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Main_Help_PrintsTheOptionsAndExitsZero()
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Serving.Server.dll"));
        start.ArgumentList.Add("--help");
        using var process = Process.Start(start)!;
        string stdout = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));

        Assert.Equal(0, process.ExitCode);
        Assert.Contains("Serving:Model:Dtype", stdout, StringComparison.Ordinal);
    }
}
