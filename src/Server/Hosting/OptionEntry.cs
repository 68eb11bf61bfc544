namespace Serving.Server.Hosting;

/// <summary>
/// One setting the server reads: its configuration key (<c>*</c> stands for a list position), its type's name, its
/// default as text (empty: none), and its command-line switch (null: only as <c>--Serving:…</c>, appsettings.json or
/// a <c>Serving__…</c> environment variable).
/// </summary>
public sealed record OptionEntry(string Key, string TypeName, string Default, string? Switch);
