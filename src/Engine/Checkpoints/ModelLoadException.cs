namespace Serving.Engine.Checkpoints;

/// <summary>A checkpoint that cannot be served; the message names the file and the tensor.</summary>
public sealed class ModelLoadException(string message, Exception? inner = null) : Exception(message, inner);
