namespace Serving.Contracts.Configuration;

/// <summary>A config.json the engine cannot run; the message names the file and the field.</summary>
public sealed class ModelConfigException(string message) : Exception(message);
