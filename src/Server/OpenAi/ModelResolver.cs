using Serving.Server.Hosting;

namespace Serving.Server.OpenAi;

internal static class ModelResolver
{
    /// <summary>The request's <c>model</c> must name the served model (adapters come with the adapter store).</summary>
    public static void Check(JsonFields f, ModelHost host)
    {
        string model = f.String("model") ?? throw JsonFields.Bad("model", "is required");
        if (model != host.ModelId)
            throw new ApiException(404, $"The model '{model}' does not exist. Available: '{host.ModelId}'.", "model");
    }
}
