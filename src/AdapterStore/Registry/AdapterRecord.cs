using Serving.Contracts;

namespace Serving.AdapterStore.Registry;

/// <summary>A registered adapter: where its files are and which content version they hold.</summary>
/// <param name="Id">The name clients use.</param>
/// <param name="Source">The adapter folder (a local path; other URI schemes come with their sources).</param>
/// <param name="Version">Content hash of adapter_config.json and adapter_model.safetensors.</param>
/// <param name="RegisteredAt">When it was registered or last replaced.</param>
/// <param name="Tenant">The tenant that owns it; null = shared (usable by every tenant, managed by admins only).</param>
/// <param name="Shape">The LoRA shape the version had when registered (<see cref="AdapterShape"/>); a change in place must keep it.</param>
/// <param name="ProcessOnly">Registered for this process only (the command line's <c>--lora-modules</c>, as vLLM's last): never
/// written to the registry file, and gone at the next start unless the command line names it again.</param>
public sealed record AdapterRecord(AdapterId Id, string Source, string Version, DateTimeOffset RegisteredAt, string? Tenant = null, string? Shape = null,
    bool ProcessOnly = false);
