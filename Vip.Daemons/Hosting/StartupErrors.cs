using System.Net;
using System.Net.Sockets;
using System.Reflection;
using Microsoft.Extensions.Options;

namespace Vip.Daemons.Hosting;

/// <summary>Recognises the exceptions that mean "bad configuration or environment" and words them as one line.</summary>
internal static class StartupErrors
{
    /// <summary>
    /// True when <paramref name="exception"/> (or what it wraps) is a configuration or environment failure;
    /// <paramref name="line"/> is then the single line to print. Bugs are not recognised: they keep their stack.
    /// </summary>
    public static bool TryDescribe(Exception exception, out string line)
    {
        var lines = new List<string>();
        foreach (var ex in Leaves(exception))
        {
            if (Describe(ex) is not { } one)
            {
                line = "";
                return false;
            }

            if (!lines.Contains(one))
            {
                lines.Add(one);
            }
        }

        line = OneLine(string.Join("; ", lines));
        return lines.Count > 0;
    }

    /// <summary>Makes <paramref name="text"/> a single line (journald and humans both read line by line).</summary>
    public static string OneLine(string text) => text.ReplaceLineEndings(" ").Trim();

    private static string? Describe(Exception ex) => ex switch
    {
        StartupException s => s.Message,
        OptionsValidationException o => $"invalid {o.OptionsType.Name}: " + string.Join("; ", o.Failures),
        SocketException s when s.SocketErrorCode is SocketError.AddressAlreadyInUse or SocketError.AddressNotAvailable or SocketError.AccessDenied
            => "cannot listen: " + s.Message,
        HttpListenerException h => "Metrics:Listen: cannot listen: " + h.Message,
        // ConfigurationBinder: "Failed to convert configuration value at 'Vip:Port' to type 'System.Int32'." and
        // ErrorOnUnknownConfiguration's "... the following properties were not found ...".
        InvalidOperationException i when i.Source == "Microsoft.Extensions.Configuration.Binder" => i.Message,
        // A malformed JSON configuration file: "Failed to load configuration from file '...'".
        InvalidDataException d when d.Message.StartsWith("Failed to load configuration from file", StringComparison.Ordinal)
            => d.Message + " " + Innermost(d).Message,
        _ => null,
    };

    private static Exception Innermost(Exception ex)
    {
        while (ex.InnerException is { } inner)
        {
            ex = inner;
        }

        return ex;
    }

    private static IEnumerable<Exception> Leaves(Exception ex)
    {
        switch (ex)
        {
            case AggregateException agg:
                foreach (var inner in agg.InnerExceptions)
                {
                    foreach (var leaf in Leaves(inner))
                    {
                        yield return leaf;
                    }
                }

                break;
            case TargetInvocationException { InnerException: { } inner }:
                foreach (var leaf in Leaves(inner))
                {
                    yield return leaf;
                }

                break;
            // OpenTelemetry wraps the HttpListener failure: "PrometheusExporter HttpListener could not be started."
            case InvalidOperationException { InnerException: HttpListenerException inner }:
                yield return inner;
                break;
            default:
                yield return ex;
                break;
        }
    }
}
