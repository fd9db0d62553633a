namespace Converge.Server;

/// <summary>The names under which the server registers its authentication scheme and authorization policy.</summary>
public static class ConvergeAuthentication
{
    /// <summary>The API key authentication scheme: <c>Authorization: Bearer &lt;key&gt;</c> with a key from <see cref="ConvergeServerOptions.ApiKeys"/>.</summary>
    public const string ApiKeyScheme = "ConvergeApiKey";

    /// <summary>The authorization policy of the endpoints: an authenticated principal from the API key scheme, any JWT bearer scheme, or <see cref="ConvergeServerOptions.AuthenticationSchemes"/>.</summary>
    public const string PolicyName = "Converge";
}
