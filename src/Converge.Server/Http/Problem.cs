using System.Text.Json;
using Converge.Protocol.Messages;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;

namespace Converge.Server.Http;

/// <summary>Writes protocol errors as <c>application/problem+json</c> with a <c>code</c> member from <see cref="ProtocolErrorCodes"/>.</summary>
internal static class Problem
{
    public const string ContentType = "application/problem+json";

    /// <summary>Gets the HTTP status of a protocol error code.</summary>
    public static int StatusOf(string code) => code switch
    {
        ProtocolErrorCodes.DocumentTooLarge or ProtocolErrorCodes.BatchTooLarge or ProtocolErrorCodes.PayloadTooLarge => StatusCodes.Status413PayloadTooLarge,
        ProtocolErrorCodes.Unauthenticated => StatusCodes.Status401Unauthorized,
        ProtocolErrorCodes.ScopeForbidden => StatusCodes.Status403Forbidden,
        ProtocolErrorCodes.NotFound => StatusCodes.Status404NotFound,
        ProtocolErrorCodes.ClientIdReused => StatusCodes.Status409Conflict,
        ProtocolErrorCodes.TooManyRequests => StatusCodes.Status429TooManyRequests,
        ProtocolErrorCodes.RequestTimeout => StatusCodes.Status408RequestTimeout,
        _ => StatusCodes.Status400BadRequest,
    };

    public static async Task WriteAsync(HttpContext context, int status, string code, string detail, string? scope = null)
    {
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = ContentType;
        response.Headers.CacheControl = "no-store";
        if (status == StatusCodes.Status429TooManyRequests)
        {
            response.Headers.RetryAfter = RequestLimits.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (status is StatusCodes.Status408RequestTimeout or StatusCodes.Status429TooManyRequests
            && (HttpProtocol.IsHttp11(context.Request.Protocol) || HttpProtocol.IsHttp10(context.Request.Protocol))
            && context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true)
        {
            // The body was not read: the connection ends with the answer, instead of Kestrel reading the rest for nothing.
            response.Headers.Connection = "close";
        }

        var writer = new Utf8JsonWriter(response.BodyWriter);
        await using (writer.ConfigureAwait(false))
        {
            writer.WriteStartObject();
            writer.WriteString("type", "about:blank");
            writer.WriteString("title", ReasonPhrases.GetReasonPhrase(status));
            writer.WriteNumber("status", status);
            writer.WriteString("detail", detail);
            writer.WriteString("code", code);
            if (scope is not null)
            {
                // The caller's own input, named so a client can set that scope's writes aside and sync the others.
                writer.WriteString("scope", scope);
            }

            writer.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync(context.RequestAborted).ConfigureAwait(false);
    }
}
