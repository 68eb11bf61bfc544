using Serving.Engine.Generation;

namespace Serving.Server.Generation;

/// <summary>One message from the engine worker to a waiting request: a token, or the error that ended it.</summary>
internal sealed record GenerationUpdate(TokenEvent? Token, Exception? Error);
