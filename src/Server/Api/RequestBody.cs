using System.Text.Json;

namespace Serving.Server.Api;

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
        catch (BadHttpRequestException ex)
        {
            throw new ApiException(ex.StatusCode, ex.Message);
        }
        catch (IOException ex)
        {
            // The client reset the connection or stream mid-body. Kestrel fails the read before it cancels
            // RequestAborted, so left unhandled this would be logged as a server error; the answer reaches nobody.
            throw ApiException.BadRequest($"the request body could not be read: {ex.Message}");
        }

        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            doc.Dispose();
            throw ApiException.BadRequest("request body must be a JSON object");
        }

        try
        {
            EnsureStringsDecode(doc.RootElement, "$");
        }
        catch
        {
            doc.Dispose();
            throw;
        }

        return doc;
    }

    /// <summary>
    /// JSON escapes may spell a lone UTF-16 surrogate (<c>"\ud800"</c>), which the parser accepts but no string can hold:
    /// reading it later would throw deep inside an endpoint. Every string is decoded once here so such a body is a 400 naming
    /// where it is. The depth is bounded by the parser's maximum (64).
    /// </summary>
    private static void EnsureStringsDecode(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                try
                {
                    element.GetString();
                }
                catch (InvalidOperationException ex)
                {
                    throw ApiException.BadRequest($"request body has an invalid string at {path}: {ex.Message}");
                }

                break;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    string name;
                    try
                    {
                        name = property.Name;
                    }
                    catch (InvalidOperationException ex)
                    {
                        throw ApiException.BadRequest($"request body has an invalid property name in {path}: {ex.Message}");
                    }

                    EnsureStringsDecode(property.Value, path + "." + name);
                }

                break;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in element.EnumerateArray())
                    EnsureStringsDecode(item, $"{path}[{i++}]");
                break;
        }
    }
}
