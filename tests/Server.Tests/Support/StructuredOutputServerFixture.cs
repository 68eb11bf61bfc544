using Serving.Authoring.Synthetic;

namespace Serving.Server.Tests.Support;

/// <summary>
/// A server on a generated random-weight model (float32, GPT-2 vocabulary) with three adapters, room for 4 sequences of
/// 1,024 tokens: unconstrained, such a model never writes valid JSON, so every valid output is the constraint's doing. Four
/// sequences per batch keep decode steps on the row-independent kernels, so a free row's tokens must not depend on what it
/// was batched with (bigger GEMMs may round a row differently with the batch's size).
/// </summary>
public sealed class StructuredOutputServerFixture : IAsyncLifetime
{
    public static readonly string[] Adapters = ["extract-a", "extract-b", "translate-c"];

    private readonly string _root = TestDirectories.Path("structured");

    public ServerProcess Server { get; private set; } = null!;
    public HttpClient Http => Server.Http;
    public string Model => "base";

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 29 });
        string adapters = Path.Combine(_root, "adapters");
        SyntheticAdapterWriter.Write(Path.Combine(adapters, Adapters[0]), model, 8, 16, ["q_proj", "v_proj", "down_proj"], 1);
        SyntheticAdapterWriter.Write(Path.Combine(adapters, Adapters[1]), model, 4, 8, ["o_proj", "up_proj"], 2);
        SyntheticAdapterWriter.Write(Path.Combine(adapters, Adapters[2]), model, 16, 16, ["q_proj", "k_proj", "gate_proj"], 3);
        Server = await ServerProcess.StartAsync("--model", model, "--adapters", adapters, "--dtype", "float32",
            "--max-sequences", "4", "--max-context", "1024", "--max-lora-rank", "16", "--enable-embeddings");
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        TestDirectories.Delete(_root);
    }
}
