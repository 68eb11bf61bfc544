namespace Serving.Server.Tests.Support;

/// <summary>How <see cref="HungS3Server"/> misbehaves.</summary>
public enum HungS3Mode
{
    /// <summary>Accepts and reads each request, never answers.</summary>
    Silent,

    /// <summary>Answers 200 with the headers and 64 of 4,096 body bytes, then sends nothing more.</summary>
    StallBody,
}
