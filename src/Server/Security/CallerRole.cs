namespace Serving.Server.Security;

internal enum CallerRole
{
    /// <summary>Uses and manages its own tenant's adapters; uses shared ones.</summary>
    User,

    /// <summary>Also manages shared adapters and sees every tenant's.</summary>
    Admin,

    /// <summary>Only reads <c>/metrics</c> (a scraper's key): no generation, no adapters.</summary>
    Metrics,
}
