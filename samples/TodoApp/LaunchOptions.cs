namespace TodoApp;

/// <summary>What the command line asks for: a server, one device, or a server with several devices.</summary>
internal enum LaunchMode
{
    Devices,
    Server,
    Device,
}

/// <summary>The sample's command line.</summary>
internal sealed record LaunchOptions
{
    public const string Usage = """
        Usage:
          TodoApp [--devices phone,laptop] [--data DIR] [--port-base N]
          TodoApp server --data DIR [--urls http://127.0.0.1:0]
          TodoApp device --name NAME --server URL --data DIR [--urls http://127.0.0.1:0]
        """;

    public LaunchMode Mode { get; init; } = LaunchMode.Devices;

    public IReadOnlyList<string> Devices { get; init; } = ["phone", "laptop"];

    public string? Name { get; init; }

    public Uri? Server { get; init; }

    public string? Data { get; init; }

    public string? Urls { get; init; }

    public int? PortBase { get; init; }

    public string? Error { get; init; }

    public static LaunchOptions Parse(string[] args)
    {
        var options = new LaunchOptions();
        var rest = args.AsSpan();
        if (rest.Length > 0 && rest[0] is "server" or "device")
        {
            options = options with { Mode = rest[0] == "server" ? LaunchMode.Server : LaunchMode.Device };
            rest = rest[1..];
        }

        for (var i = 0; i < rest.Length; i++)
        {
            var name = rest[i];
            if (i + 1 >= rest.Length)
            {
                return options with { Error = $"{name} needs a value." };
            }

            var value = rest[++i];
            switch (name)
            {
                case "--devices":
                    options = options with { Devices = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) };
                    break;
                case "--name":
                    options = options with { Name = value };
                    break;
                case "--server":
                    if (!Uri.TryCreate(value, UriKind.Absolute, out var server))
                    {
                        return options with { Error = $"--server {value} is not a URL." };
                    }

                    options = options with { Server = server };
                    break;
                case "--data":
                    options = options with { Data = Path.GetFullPath(value) };
                    break;
                case "--urls":
                    options = options with { Urls = value };
                    break;
                case "--port-base":
                    if (!int.TryParse(value, out var port) || port is < 1 or > 65000)
                    {
                        return options with { Error = $"--port-base {value} is not a port." };
                    }

                    options = options with { PortBase = port };
                    break;
                default:
                    return options with { Error = $"Unknown option {name}." };
            }
        }

        return options.Mode switch
        {
            LaunchMode.Device when options.Name is null || options.Server is null || options.Data is null =>
                options with { Error = "device needs --name, --server and --data." },
            LaunchMode.Server when options.Data is null => options with { Error = "server needs --data." },
            LaunchMode.Devices when options.Devices.Count == 0 => options with { Error = "--devices names no device." },
            _ => options,
        };
    }
}
