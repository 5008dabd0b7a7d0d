using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Vip.Daemons.Hosting;

/// <summary>Builds and runs the generic host of one role: configuration, logging, systemd integration.</summary>
/// <remarks>
/// Configuration, lowest precedence first: <c>appsettings.json</c>, <c>appsettings.ROLE.json</c> (both next to
/// the executable, or in the working directory), environment variables prefixed <c>VIPD_</c> (<c>__</c> separates
/// sections), then command-line switches. Each role maps its short switches (<c>--listen</c>) onto configuration
/// keys (<c>Vip:Listen</c>); switches listed as repeatable (<c>--attr k=v --attr k=v</c>) become indexed keys.
/// </remarks>
internal static class RoleHost
{
    /// <summary>Creates a host builder for <paramref name="role"/> with configuration from every source.</summary>
    public static HostApplicationBuilder CreateBuilder(
        string role,
        string[] args,
        IReadOnlyDictionary<string, string> switchMappings,
        IReadOnlyCollection<string>? repeatableSwitches = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            ApplicationName = "vipd-" + role,
            ContentRootPath = AppContext.BaseDirectory,
            DisableDefaults = false,
        });

        builder.Configuration.AddJsonFile(Path.Combine(AppContext.BaseDirectory, $"appsettings.{role}.json"), optional: true, reloadOnChange: true);
        builder.Configuration.AddJsonFile(Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json"), optional: true, reloadOnChange: true);
        builder.Configuration.AddJsonFile(Path.Combine(Directory.GetCurrentDirectory(), $"appsettings.{role}.json"), optional: true, reloadOnChange: true);
        builder.Configuration.AddEnvironmentVariables("VIPD_");
        builder.Configuration.AddInMemoryCollection(SwitchParser.Parse(args, switchMappings, repeatableSwitches ?? []));

        builder.Services.AddSystemd();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
        return builder;
    }

    /// <summary>Runs the host until SIGTERM/SIGINT; turns start-up failures into one clear line and exit code 78.</summary>
    public static async Task<int> RunAsync(IHost host)
    {
        try
        {
            await host.RunAsync().ConfigureAwait(false);
            return ExitCodes.Ok;
        }
        catch (OptionsValidationException ex)
        {
            throw new StartupException("invalid configuration: " + string.Join("; ", ex.Failures), ex);
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.AddressAlreadyInUse or SocketError.AddressNotAvailable or SocketError.AccessDenied)
        {
            throw new StartupException("cannot listen: " + ex.Message, ex);
        }
        finally
        {
            if (host is IAsyncDisposable d)
            {
                await d.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                host.Dispose();
            }
        }
    }
}

/// <summary>Turns <c>--switch value</c> pairs into configuration keys, with repeatable switches as indexed keys.</summary>
internal static class SwitchParser
{
    public static Dictionary<string, string?> Parse(
        string[] args, IReadOnlyDictionary<string, string> mappings, IReadOnlyCollection<string> repeatable)
    {
        var result = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith('-'))
            {
                throw new StartupException($"unexpected argument '{arg}' (switches take the form --name value)");
            }

            string name;
            string? value;
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                name = arg[..eq];
                value = arg[(eq + 1)..];
            }
            else
            {
                name = arg;
                value = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : "true";
            }

            string key;
            if (mappings.TryGetValue(name, out var mapped))
            {
                key = mapped;
            }
            else if (name.StartsWith("--", StringComparison.Ordinal) && name.Contains(':', StringComparison.Ordinal))
            {
                key = name[2..]; // a full configuration key, e.g. --Vip:IdleTimeout 00:05:00
            }
            else
            {
                throw new StartupException($"unknown switch '{name}' (see --help)");
            }

            if (repeatable.Contains(name))
            {
                counts.TryGetValue(key, out var n);
                counts[key] = n + 1;
                result[$"{key}:{n}"] = value;
            }
            else
            {
                result[key] = value;
            }
        }

        return result;
    }
}
