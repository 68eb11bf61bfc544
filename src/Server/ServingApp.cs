using Microsoft.AspNetCore.Diagnostics;
using Microsoft.Extensions.Options;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Serving.AdapterStore;
using Serving.Runtime.Generation;
using Serving.Runtime.Hosting;
using Serving.Server.Api;
using Serving.Server.Api.Admin;
using Serving.Server.Api.Grpc;
using Serving.Server.Api.OpenAi;
using Serving.Server.Hosting;
using Serving.Server.Requests;

namespace Serving.Server;

/// <summary>Builds the web application: options, the model host, the engine loop and the HTTP endpoints.</summary>
public static class ServingApp
{
    /// <summary>Short command-line switches mapped onto configuration keys.</summary>
    public static readonly IReadOnlyDictionary<string, string> SwitchMappings = new Dictionary<string, string>
    {
        ["--model"] = "Serving:Model:Path",
        ["--model-name"] = "Serving:Model:Name",
        ["--dtype"] = "Serving:Model:Dtype",
        ["--device"] = "Serving:Model:Device",
        ["--quantization"] = "Serving:Model:Quantization",
        ["--max-sequences"] = "Serving:Model:MaxSequences",
        ["--max-context"] = "Serving:Model:MaxContext",
        ["--cache-dir"] = "Serving:Model:CacheDirectory",
        ["--threads"] = "Serving:Model:CpuThreads",
        ["--adapters"] = "Serving:Adapters:Path",
        ["--max-adapter-slots"] = "Serving:Adapters:MaxDeviceSlots",
        ["--max-lora-rank"] = "Serving:Adapters:MaxRank",
        ["--max-loras"] = "Serving:Adapters:MaxDeviceSlots",                // vLLM's name
        ["--max-model-len"] = "Serving:Model:MaxContext",                   // vLLM's name
        ["--max-num-seqs"] = "Serving:Model:MaxSequences",                  // vLLM's name
        ["--tokenizer"] = "Serving:Model:Tokenizer",                        // vLLM's
        ["--seed"] = "Serving:Model:Seed",                                  // vLLM's
        ["--max-logprobs"] = "Serving:Model:MaxLogprobs",                   // vLLM's
        ["--hf-overrides"] = "Serving:Model:HfOverrides",                   // vLLM's: a JSON object, kept as text
        ["--chat-template"] = "Serving:Model:ChatTemplate",
        ["--chat-template-content-format"] = "Serving:Model:ChatTemplateContentFormat",   // vLLM's
        ["--generation-config"] = "Serving:Model:GenerationConfig",            // vLLM's
        ["--adapter-registry"] = "Serving:Adapters:RegistryPath",
        ["--batching-policy"] = "Serving:Batching:Policy",
        ["--scheduling-policy"] = "Serving:Batching:SchedulingPolicy",
        ["--kv-cache-tokens"] = "Serving:Batching:KvCacheTokens",
        ["--max-queued-requests"] = "Serving:Batching:MaxQueuedRequests",
        ["--request-timeout"] = "Serving:Batching:RequestTimeoutSeconds",
        ["--speculation"] = "Serving:Speculation:Method",
        ["--num-speculative-tokens"] = "Serving:Speculation:Tokens",
        ["--prompt-lookup-min"] = "Serving:Speculation:PromptLookupMin",
        ["--prompt-lookup-max"] = "Serving:Speculation:PromptLookupMax",
        ["--shutdown-grace"] = "Serving:ShutdownGraceSeconds",
        ["--max-num-batched-tokens"] = "Serving:Batching:MaxPrefillTokensPerStep",   // vLLM's (its budget counts decode rows too)
        ["--block-size"] = "Serving:Batching:KvBlockSize",                        // vLLM's
        ["--tool-call-parser"] = "Serving:Chat:ToolCallParser",
        ["--reasoning-parser"] = "Serving:Chat:ReasoningParser",
        ["--score-tokens"] = "Serving:Score:ClassifierTokens",
        ["--otlp-traces-endpoint"] = "Serving:Tracing:OtlpEndpoint",                 // vLLM's
        ["--root-path"] = "Serving:RootPath",                                         // vLLM's
        ["--ssl-certfile"] = "Kestrel:Certificates:Default:Path",                     // vLLM's
        ["--ssl-keyfile"] = "Kestrel:Certificates:Default:KeyPath",                   // vLLM's
    };

    /// <summary>Command-line flags without a value, each standing for one configuration setting.</summary>
    public static readonly IReadOnlyDictionary<string, (string Key, string Value)> FlagMappings = new Dictionary<string, (string, string)>
    {
        ["--no-prefix-caching"] = ("Serving:Batching:PrefixCaching", "false"),
        ["--enable-prefix-caching"] = ("Serving:Batching:PrefixCaching", "true"),   // vLLM's
        ["--enable-embeddings"] = ("Serving:Embeddings:FromGenerativeModels", "true"),
        ["--disable-hybrid-kv-cache-manager"] = ("Serving:Batching:HybridKvCache", "false"),   // vLLM's
        ["--allow-credentials"] = ("Serving:Cors:AllowCredentials", "true"),                  // vLLM's
        ["--return-tokens-as-token-ids"] = ("Serving:Chat:ReturnTokensAsTokenIds", "true"),   // vLLM's
    };

    /// <summary>
    /// The arguments with every value-less flag replaced by its setting, and vLLM's JSON switches (<c>--speculative-config</c>) by
    /// the settings they stand for (before any configuration provider reads them).
    /// </summary>
    private static string[] ExpandFlags(string[] args)
    {
        args = VllmArguments.Expand(args);
        var expanded = new List<string>(args.Length);
        for (int i = 0; i < args.Length; i++)
        {
            if (FlagMappings.TryGetValue(args[i], out var setting))
                expanded.AddRange(["--" + setting.Key, setting.Value]);
            else if (JsonConfigArguments.Read(args, ref i) is var (name, json))
                expanded.AddRange(json is null ? [] : JsonConfigArguments.Switches[name](json, []));
            else
                expanded.Add(args[i]);
        }

        return [.. expanded];
    }

    public const string DefaultUrl = "http://127.0.0.1:8000";

    /// <param name="args">Command-line arguments (switches and configuration keys).</param>
    /// <param name="configure">Last word on the builder before it is built (tests add log providers here).</param>
    /// <exception cref="StartupArgumentsException">An unknown switch or <c>Serving:*</c> setting.</exception>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        if (StartupArguments.ArgumentProblems(args) is { Count: > 0 } argumentProblems)
            throw new StartupArgumentsException(argumentProblems);
        var ignored = VllmArguments.IgnoredNotes(args).ToList();
        args = ExpandFlags(args);
        RuntimeServices.ApplyNativeDefaults();
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.WebHost.UseKestrelHttpsConfiguration();     // --ssl-certfile/--ssl-keyfile: Kestrel's default certificate for https:// addresses
        // REST, SSE and gRPC on one port: HTTP/1.1 and HTTP/2 (h2c with prior knowledge on cleartext endpoints).
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AllowAlternateSchemes = true;
            k.ConfigureEndpointDefaults(l =>
            {
                l.Protocols = Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http1AndHttp2;
                l.Use(next => CleartextHttp2Detection.Middleware(next, () => l.KestrelServerOptions.Limits.KeepAliveTimeout));
            });
        });
        builder.Configuration.AddCommandLine(args, SwitchMappings.ToDictionary(kv => kv.Key, kv => kv.Value));
        if (StartupArguments.SettingProblems(builder.Configuration) is { Count: > 0 } settingProblems)
            throw new StartupArgumentsException(settingProblems);
        // Loopback unless told otherwise (--urls, ASPNETCORE_URLS as the container image sets, or Urls in configuration).
        // The metrics-only listener, when configured, is one more address beside them.
        string urls = builder.Configuration["urls"] is { Length: > 0 } configured ? configured : DefaultUrl;
        string? metricsUrl = builder.Configuration[$"{Observability.MetricsOptions.Section}:Url"];
        builder.WebHost.UseUrls(string.IsNullOrEmpty(metricsUrl) ? urls : $"{urls};{metricsUrl}");
        var hosting = builder.Configuration.GetSection(ServerHostingOptions.Section).Get<ServerHostingOptions>() ?? new ServerHostingOptions();
        if (hosting.Validate().ToList() is { Count: > 0 } hostingProblems)
            throw new StartupArgumentsException(hostingProblems);
        builder.Services.AddServing(builder.Configuration);
        if (hosting.Cors.AllowedOrigins.Count > 0)
            builder.Services.AddCors(o => o.AddDefaultPolicy(p => CorsPolicy(p, hosting.Cors)));
        configure?.Invoke(builder);
        var app = builder.Build();
        if (hosting.RootPath is { Length: > 0 } rootPath)
            app.UsePathBase(rootPath);
        app.UseRouting();                                   // after the path base, so routes match the path without it
        foreach (string note in ignored)
            app.Logger.LogWarning("{Note}", note);
        // The exporter listens from now on: a measurement made before its listener starts would be lost.
        app.Services.GetRequiredService<Observability.PrometheusExporter>();
        app.Use(Observability.RequestLogging.InvokeAsync);
        app.Use(Observability.RequestCounting.InvokeAsync);
        app.UseExceptionHandler(e => e.Run(WriteUnhandledError));
        if (hosting.Cors.AllowedOrigins.Count > 0)
            app.UseCors();                                  // before authentication: a browser's preflight carries no key
        app.Use(Security.AuthenticationMiddleware.InvokeAsync);
        app.Use(GrpcMessageValidation.For(V1.GenerationReflection.Descriptor, V1.AdaptersReflection.Descriptor).InvokeAsync);
        app.MapServingEndpoints();
        app.Lifetime.ApplicationStarted.Register(() => app.Logger.LogInformation(
            "REST, SSE and gRPC share each endpoint: cleartext HTTP/2 with prior knowledge is detected per connection (Kestrel's HTTP/2-needs-TLS warning does not apply)"));
        return app;
    }

    /// <summary>The CORS policy <paramref name="cors"/> describes; responses expose <c>X-Request-Id</c> to the page.</summary>
    private static void CorsPolicy(Microsoft.AspNetCore.Cors.Infrastructure.CorsPolicyBuilder policy, CorsOptions cors)
    {
        if (cors.AllowedOrigins.Contains("*"))
            policy.AllowAnyOrigin();
        else
            policy.WithOrigins([.. cors.AllowedOrigins]);
        if (cors.AllowedMethods.Count == 0 || cors.AllowedMethods.Contains("*"))
            policy.AllowAnyMethod();
        else
            policy.WithMethods([.. cors.AllowedMethods]);
        if (cors.AllowedHeaders.Count == 0 || cors.AllowedHeaders.Contains("*"))
            policy.AllowAnyHeader();
        else
            policy.WithHeaders([.. cors.AllowedHeaders]);
        if (cors.AllowCredentials)
            policy.AllowCredentials();
        policy.WithExposedHeaders("X-Request-Id");
    }

    public static IServiceCollection AddServing(this IServiceCollection services, IConfiguration configuration)
    {
        // The demo model stands in when no model is named; registered before the runtime, whose ModelHost takes it.
        services.AddSingleton<IDefaultModel, DemoModelDefaults>();
        services.AddServingRuntime(configuration);
        services.AddOptions<Security.AuthOptions>().Bind(configuration.GetSection(Security.AuthOptions.Section))
            .Validate(o => !o.Validate().Any(), "invalid Serving:Auth keys (each at least 16 characters, unique; users need a tenant)").ValidateOnStart();
        services.AddSingleton<Security.ApiKeyAuthenticator>();
        services.AddOptions<ChatOptions>().Bind(configuration.GetSection(ChatOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ChatOptions>, ChatOptionsValidator>();
        services.AddSingleton<Observability.PrometheusExporter>();
        services.AddOptions<Observability.MetricsOptions>().Bind(configuration.GetSection(Observability.MetricsOptions.Section))
            .Validate(o => !o.Validate().Any(), "Serving:Metrics:Url must be http://HOST:PORT with an explicit, non-zero port").ValidateOnStart();
        services.AddSingleton<GenerationRequestStage>();
        services.AddSingleton<CompletionsEndpoint>();
        services.AddSingleton<ChatCompletionsEndpoint>();
        services.AddSingleton<EmbeddingsEndpoint>();
        services.AddSingleton<PromptEmbedder>();
        services.AddSingleton<ScoreEndpoint>();
        services.AddOptions<EmbeddingOptions>().Bind(configuration.GetSection(EmbeddingOptions.Section)).ValidateOnStart();   // a Pooling that names no way to pool stops start-up
        services.AddOptions<ScoreOptions>().Bind(configuration.GetSection(ScoreOptions.Section))
            .Validate(o => !o.Validate().Any(), "Serving:Score:ClassifierTokens (--score-tokens) must name two different tokens, negative first: NO,YES").ValidateOnStart();
        // After the runtime's hosted services: it looks its tokens up in the model they load.
        services.AddSingleton<TokenClassifier>();
        services.AddHostedService(sp => sp.GetRequiredService<TokenClassifier>());
        services.AddSingleton<Api.OpenAi.Responses.ResponsesEndpoint>();
        services.AddSingleton<Api.OpenAi.Responses.StoredResponsesEndpoint>();
        services.AddSingleton<Api.OpenAi.Responses.ResponseStore>();
        services.AddOptions<Api.OpenAi.Responses.ResponsesOptions>().Bind(configuration.GetSection(Api.OpenAi.Responses.ResponsesOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<Api.OpenAi.Responses.ResponsesOptions>, Api.OpenAi.Responses.ResponsesOptionsValidator>();
        services.AddSingleton<ModelsEndpoint>();
        services.AddSingleton<Api.Monitoring.StatusEndpoint>();
        services.AddSingleton<TokenizeEndpoint>();
        services.AddSingleton<AdapterManagementEndpoint>();
        services.AddSingleton<AdapterRegistrar>();
        // SIGTERM: Kestrel stops accepting, running requests finish within the grace period, then the engine stops.
        var hosting = configuration.GetSection(ServerHostingOptions.Section).Get<ServerHostingOptions>() ?? new ServerHostingOptions();
        double grace = hosting.ShutdownGraceSeconds;
        services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(Math.Max(1, grace)));
        services.AddGrpc(o => o.Interceptors.Add<ApiExceptionInterceptor>()).AddJsonTranscoding();
        services.AddGrpcReflection();
        // Traces go out over OTLP only when an endpoint is configured (standard OTEL_EXPORTER_OTLP_ENDPOINT, or
        // Serving:Tracing:OtlpEndpoint); otherwise the spans are never created.
        string? otlp = hosting.Tracing.OtlpEndpoint ?? Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT");
        if (!string.IsNullOrEmpty(otlp))
            services.AddOpenTelemetry()
                .ConfigureResource(r => r.AddService("serving"))
                .WithTracing(t => t.AddSource(Serving.Runtime.Observability.ServingTracing.SourceName).AddAspNetCoreInstrumentation()
                    .AddOtlpExporter(o => o.Endpoint = new Uri(otlp)));
        services.AddGrpcHealthChecks().AddCheck<EngineReadinessCheck>("engine");
        return services;
    }

    public static void MapServingEndpoints(this WebApplication app)
    {
        app.MapPost("/v1/completions", (HttpContext ctx, CompletionsEndpoint e) => Guard(ctx, e.HandleAsync));
        app.MapPost("/v1/chat/completions", (HttpContext ctx, ChatCompletionsEndpoint e) => Guard(ctx, e.HandleAsync));
        app.MapPost("/v1/embeddings", (HttpContext ctx, EmbeddingsEndpoint e) => Guard(ctx, e.HandleAsync));
        foreach (string path in new[] { "/score", "/v1/score" })
            app.MapPost(path, (HttpContext ctx, ScoreEndpoint e) => Guard(ctx, e.ScoreAsync));
        foreach (string path in new[] { "/rerank", "/v1/rerank", "/v2/rerank" })
            app.MapPost(path, (HttpContext ctx, ScoreEndpoint e) => Guard(ctx, e.RerankAsync));
        app.MapPost("/v1/responses", (HttpContext ctx, Api.OpenAi.Responses.ResponsesEndpoint e) => Guard(ctx, e.HandleAsync));
        app.MapGet("/v1/responses/{id}", (HttpContext ctx, string id, Api.OpenAi.Responses.StoredResponsesEndpoint e) => Guard(ctx, c => e.GetAsync(c, id)));
        app.MapDelete("/v1/responses/{id}", (HttpContext ctx, string id, Api.OpenAi.Responses.StoredResponsesEndpoint e) => Guard(ctx, c => e.DeleteAsync(c, id)));
        app.MapGet("/v1/responses/{id}/input_items", (HttpContext ctx, string id, Api.OpenAi.Responses.StoredResponsesEndpoint e) => Guard(ctx, c => e.InputItemsAsync(c, id)));
        app.MapPost("/tokenize", (HttpContext ctx, TokenizeEndpoint e) => Guard(ctx, e.TokenizeAsync));
        app.MapPost("/detokenize", (HttpContext ctx, TokenizeEndpoint e) => Guard(ctx, e.DetokenizeAsync));
        app.MapGet("/v1/models", (HttpContext ctx, ModelsEndpoint e) => e.Handle(Security.AuthenticationMiddleware.CallerOf(ctx)));
        app.MapGet("/v1/status", (HttpContext ctx, Api.Monitoring.StatusEndpoint e) => e.Handle(Security.AuthenticationMiddleware.CallerOf(ctx)));
        app.MapPost("/v1/load_lora_adapter", (HttpContext ctx, AdapterManagementEndpoint e) => Guard(ctx, e.LoadAsync));
        app.MapPost("/v1/unload_lora_adapter", (HttpContext ctx, AdapterManagementEndpoint e) => Guard(ctx, e.UnloadAsync));
        app.MapGrpcService<GenerationService>();
        app.MapGrpcService<AdaptersService>();
        app.MapGrpcReflectionService();
        app.MapGrpcHealthChecksService();
        app.MapGet("/metrics", async (HttpContext ctx, Observability.PrometheusExporter metrics) =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await metrics.WriteAsync(ctx.Response.Body, ctx.RequestAborted);
        });
        ConsoleAssets.Map(app);
        app.MapGet("/healthz", () => Results.Text("ok"));
        app.MapGet("/readyz", Readiness);
        // vLLM's probe paths, which Helm charts, gateways and SageMaker written for vLLM call: /readyz's answer.
        app.MapGet("/health", Readiness);
        app.MapGet("/ping", Readiness);
        app.MapPost("/ping", Readiness);
        app.MapGet("/version", () => Results.Json(new { version = ServerVersion }));
    }

    /// <summary>The build's version (the informational version: semantic version + commit), as vLLM's <c>/version</c> gives its own.</summary>
    private static readonly string ServerVersion = typeof(ServingApp).Assembly
        .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
        .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "unknown";

    private static IResult Readiness(ModelHost host, EngineWorker worker, AdapterSyncService sync, IHostApplicationLifetime lifetime) =>
        lifetime.ApplicationStopping.IsCancellationRequested ? Results.Text("draining", statusCode: 503)
        : !host.IsLoaded || !worker.IsRunning ? Results.Text("not ready", statusCode: 503)
        : !sync.FirstPassDone ? Results.Text("syncing the adapter store", statusCode: 503)
        : Results.Text("ready");

    internal static async Task Guard(HttpContext ctx, Func<HttpContext, Task> handler)
    {
        try
        {
            await handler(ctx);
        }
        catch (Exception error) when (ApiException.Of(error) is ApiException ex && !ctx.Response.HasStarted)
        {
            await ApiErrorWriter.Result(ex).ExecuteAsync(ctx);
        }
        catch (OperationCanceledException)
        {
            // The client went away; its sequence was dropped by the engine loop. Kestrel can fail an I/O call on the
            // connection the client reset before it cancels RequestAborted (that is queued to the thread pool), so an
            // unset token gets a moment before the exception counts as the server's own (it then reaches the error log).
            if (!ctx.RequestAborted.IsCancellationRequested)
                await Task.Delay(ClientDepartureGrace, ctx.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
            if (!ctx.RequestAborted.IsCancellationRequested)
                throw;
        }
    }

    /// <summary>How long <see cref="Guard"/> waits for RequestAborted after a cancellation it did not see coming.</summary>
    private static readonly TimeSpan ClientDepartureGrace = TimeSpan.FromSeconds(1);

    private static async Task WriteUnhandledError(HttpContext ctx)
    {
        var error = ctx.Features.Get<IExceptionHandlerFeature>()?.Error;
        var ex = error is BadHttpRequestException bad
            ? new ApiException(bad.StatusCode, bad.Message)
            : new ApiException(500, "internal error: " + (error?.Message ?? "unknown"));
        await ApiErrorWriter.Result(ex).ExecuteAsync(ctx);
    }
}
