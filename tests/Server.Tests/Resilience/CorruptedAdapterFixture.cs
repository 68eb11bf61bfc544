using Serving.Authoring.Synthetic;
using Serving.Server.Tests.Support;

namespace Serving.Server.Tests.Resilience;

/// <summary>A server that may read adapters from local folders and from a real S3-protocol server (moto), with one good adapter.</summary>
public sealed class CorruptedAdapterFixture : IAsyncLifetime
{
    public string Root { get; } = TestDirectories.Path("corrupt");
    public string Good => Path.Combine(Root, "good");
    public MotoS3Server S3 { get; private set; } = null!;
    public ServerProcess Server { get; private set; } = null!;
    public CapturedLogs Logs { get; } = new();

    public async Task InitializeAsync()
    {
        string model = Path.Combine(Root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 51 });
        SyntheticAdapterWriter.Write(Good, model, 8, 16, ["q_proj", "v_proj", "down_proj"], 5);
        S3 = await MotoS3Server.StartAsync();
        await S3.Client.PutBucketAsync("adapters");
        Server = await ServerProcess.StartAsync(Logs.AddTo, "--model", model, "--dtype", "float32", "--cache-dir", Path.Combine(Root, "cache"),
            "--adapter-registry", Path.Combine(Root, "registry.json"), "--max-adapter-slots", "3",
            "--Serving:Adapters:S3:ServiceUrl", S3.Url, "--Serving:Adapters:S3:AccessKey", MotoS3Server.AccessKey,
            "--Serving:Adapters:S3:SecretKey", MotoS3Server.SecretKey);
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        await S3.DisposeAsync();
        TestDirectories.Delete(Root);
    }
}
