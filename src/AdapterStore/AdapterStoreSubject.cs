namespace Serving.AdapterStore;

/// <summary>Which input of an operation an <see cref="AdapterStoreException"/> is about, so the API names its field.</summary>
public enum AdapterStoreSubject
{
    /// <summary>The adapter's name.</summary>
    Name,

    /// <summary>Where its files are (a folder or an s3:// URI), or the files themselves.</summary>
    Path,
}
