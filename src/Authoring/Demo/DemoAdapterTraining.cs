using Serving.Engine.Model;

namespace Serving.Authoring.Demo;

/// <summary>
/// Trains the missing demo adapters one after another on a float32 copy of the demo model (what a server does after it
/// starts listening), reporting every step and every finished adapter.
/// </summary>
public static class DemoAdapterTraining
{
    /// <summary>Trains <paramref name="ids"/> (trained demo adapter ids, in order) into <paramref name="root"/>.</summary>
    /// <param name="modelPath">The demo model folder.</param>
    /// <param name="root">The demo store root.</param>
    /// <param name="ids">The adapters to train.</param>
    /// <param name="step">After every optimiser step: (adapter, its position in <paramref name="ids"/>, step, steps, loss); may throw to stop.</param>
    /// <param name="done">After an adapter is written into the root (and so served): its id.</param>
    public static void Run(string modelPath, string root, IReadOnlyList<string> ids, Action<string, int, int, int, double> step, Action<string> done)
    {
        using var model = LoadedModel.Load(modelPath, TorchSharp.torch.ScalarType.Float32, TorchSharp.torch.CPU, 512);
        for (int i = 0; i < ids.Count; i++)
        {
            string id = ids[i];
            int index = i;
            DemoAdapters.Train(root, model, id, (s, steps, loss) => step(id, index, s, steps, loss));
            done(id);
        }
    }
}
