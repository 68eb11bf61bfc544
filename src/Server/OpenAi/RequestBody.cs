using System.Text.Json;

namespace Serving.Server.OpenAi;

internal static class RequestBody
{
    public const long MaxBytes = 16L << 20;

    /// <summary>Parses the JSON object body; anything else is a 400.</summary>
    public static async Task<JsonDocument> ReadAsync(HttpRequest request, CancellationToken ct)
    {
        if (request.ContentLength > MaxBytes)
            throw new ApiException(413, $"request body exceeds {MaxBytes} bytes");
        JsonDocument doc;
        try
        {
            doc = await JsonDocument.ParseAsync(request.Body, default, ct).ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            throw ApiException.BadRequest($"request body is not valid JSON: {ex.Message}");
        }

        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            doc.Dispose();
            throw ApiException.BadRequest("request body must be a JSON object");
        }

        return doc;
    }
}
