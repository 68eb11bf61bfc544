using Serving.Engine.Tests.Support;

namespace Serving.Server.Tests.Hosting;

/// <summary>
/// The engine's rule (no temporary TorchSharp Scalar; see <c>Serving.Engine.Runtime.TorchScalars</c>) over the assemblies
/// the engine tests do not see: a server process runs their code beside the engine's.
/// </summary>
public sealed class TorchScalarUseTests
{
    [Theory]
    [InlineData("Serving.Server.dll")]
    [InlineData("Serving.Runtime.dll")]
    [InlineData("Serving.Authoring.dll")]
    [InlineData("Serving.AdapterStore.dll")]
    [InlineData("Serving.Batching.dll")]
    [InlineData("Serving.Server.Tests.dll")]
    public void Assembly_CallsIntoTorchSharp_NoneMakesATemporaryScalar(string file)
    {
        var offences = TorchScalarUseScanner.Offences(AppContext.BaseDirectory, file);
        Assert.True(offences.Count == 0, "use Serving.Engine.Runtime.TorchScalars instead of:\n" + string.Join("\n", offences));
    }
}
