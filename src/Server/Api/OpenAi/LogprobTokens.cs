using System.Globalization;
using Serving.Runtime.Hosting;

namespace Serving.Server.Api.OpenAi;

/// <summary>
/// How logprobs name a token: by its text, or with vLLM's <c>return_tokens_as_token_ids</c> as <c>token_id:{id}</c> —
/// which a client needs when a token's text alone is not valid UTF-8 (a byte of a multi-byte character) or is shared by
/// several ids.
/// </summary>
internal sealed record LogprobTokens(ServedModel Model, bool AsTokenIds)
{
    public string Name(int id) => AsTokenIds ? "token_id:" + id.ToString(CultureInfo.InvariantCulture) : Model.TokenText(id);

    /// <summary>Chat's <c>bytes</c>: the token's own bytes, or with token ids those of its name, as vLLM gives them.</summary>
    public byte[] Bytes(int id) => AsTokenIds ? System.Text.Encoding.UTF8.GetBytes(Name(id)) : Model.TokenBytes(id) ?? [];
}
