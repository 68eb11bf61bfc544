namespace Serving.Engine.Safetensors;

/// <summary>A safetensors file that breaks the format; the message names the file and, where known, the tensor.</summary>
internal sealed class SafetensorsFormatException(string message) : Exception(message);
