namespace Serving.Contracts.Safetensors;

/// <summary>A safetensors file that breaks the format; the message names the file and, where known, the tensor.</summary>
public sealed class SafetensorsFormatException(string message) : Exception(message);
