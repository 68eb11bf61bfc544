namespace Serving.Engine.Configuration;

/// <summary>A config.json the engine cannot run; the message names the file and the field.</summary>
internal sealed class ModelConfigException(string message) : Exception(message);
