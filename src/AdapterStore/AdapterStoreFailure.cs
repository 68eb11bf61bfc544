namespace Serving.AdapterStore;

/// <summary>Why the adapter store refused or failed an operation; the API layer alone turns it into a status.</summary>
public enum AdapterStoreFailure
{
    /// <summary>A name or path that breaks a rule before anything is read (HTTP 400).</summary>
    BadRequest,

    /// <summary>The adapter or its files do not exist, or are outside what the caller may read (404).</summary>
    NotFound,

    /// <summary>The adapter's files break a rule: format, shape against the base model, size (422).</summary>
    InvalidAdapter,

    /// <summary>The caller's tenant holds as many registrations as it may (429 / RESOURCE_EXHAUSTED, the contract's "over a tenant's quota").</summary>
    QuotaExceeded,

    /// <summary>The source could not be read now: a store outage, an open circuit, a read past its time limit (503).</summary>
    Unavailable,
}
