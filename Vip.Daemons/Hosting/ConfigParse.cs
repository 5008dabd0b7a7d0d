using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;

namespace Vip.Daemons.Hosting;

/// <summary>
/// Parses configuration values for roles and turns a bad value into a <see cref="StartupException"/> whose one
/// line names the configuration key, the value and what was expected.
/// </summary>
/// <remarks>Pass the configuration key (<c>Vip:Listen</c>), not the switch: it is what appears in files and env.</remarks>
internal static class ConfigParse
{
    /// <summary>Returns the value, or fails start-up saying that <paramref name="key"/> is required.</summary>
    public static string Required(string? value, string key)
        => string.IsNullOrWhiteSpace(value) ? throw new StartupException($"{key}: required (not set in any configuration source)") : value.Trim();

    /// <summary>
    /// Parses <c>HOST:PORT</c> where HOST is an IPv4 literal, a bracketed IPv6 literal (<c>[fd00::1]:7000</c>),
    /// <c>localhost</c> (127.0.0.1) or <c>*</c> (all IPv4 addresses). Port 0 is accepted only when
    /// <paramref name="allowPortZero"/> (listeners: "any free port").
    /// </summary>
    public static IPEndPoint Endpoint(string? value, string key, bool allowPortZero = true)
    {
        var text = Required(value, key);
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1)
        {
            throw Bad(key, text, "HOST:PORT (e.g. 10.0.0.5:7000 or [fd00::5]:7000)");
        }

        var hostText = text[..colon];
        var portText = text[(colon + 1)..];
        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            || port > IPEndPoint.MaxPort || (port == 0 && !allowPortZero))
        {
            throw Bad(key, text, allowPortZero ? "a port from 0 to 65535" : "a port from 1 to 65535");
        }

        IPAddress? address;
        if (hostText.StartsWith('[') && hostText.EndsWith(']'))
        {
            if (!IPAddress.TryParse(hostText.AsSpan(1, hostText.Length - 2), out address) || address.AddressFamily != AddressFamily.InterNetworkV6)
            {
                throw Bad(key, text, "an IPv6 address inside the brackets");
            }
        }
        else if (hostText == "*")
        {
            address = IPAddress.Any;
        }
        else if (string.Equals(hostText, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            address = IPAddress.Loopback;
        }
        else if (!IPAddress.TryParse(hostText, out address) || address.AddressFamily != AddressFamily.InterNetwork || hostText.Count(c => c == '.') != 3)
        {
            // IPAddress.TryParse accepts "1" or "1.2" as IPv4 and unbracketed IPv6; a config typo should not.
            throw Bad(key, text, "HOST:PORT with an IP address (IPv6 in brackets: [fd00::5]:7000)");
        }

        return new IPEndPoint(address, port);
    }

    /// <summary>
    /// Reads a list of endpoints from <paramref name="key"/>: a comma-separated value (<c>a:1,b:2</c>), an array
    /// section (<c>key:0</c>, <c>key:1</c> — what repeatable switches and JSON arrays produce), or both.
    /// Fails start-up when the list is empty (unless <paramref name="allowEmpty"/>) or names an endpoint twice.
    /// </summary>
    public static IReadOnlyList<IPEndPoint> Endpoints(IConfiguration configuration, string key, bool allowEmpty = false, bool allowPortZero = false)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var items = new List<string>();
        AddCommaSeparated(items, configuration[key]);
        foreach (var child in configuration.GetSection(key).GetChildren())
        {
            AddCommaSeparated(items, child.Value);
        }

        if (items.Count == 0 && !allowEmpty)
        {
            throw new StartupException($"{key}: the list is empty (give at least one HOST:PORT)");
        }

        var result = new List<IPEndPoint>(items.Count);
        foreach (var item in items)
        {
            var ep = Endpoint(item, key, allowPortZero);
            if (result.Contains(ep))
            {
                throw new StartupException($"{key}: {ep} is listed twice");
            }

            result.Add(ep);
        }

        return result;
    }

    /// <summary>Fails start-up unless <paramref name="path"/> names an existing file this process can read.</summary>
    public static string ReadableFile(string? path, string key)
    {
        var full = Path.GetFullPath(Required(path, key));
        if (Directory.Exists(full))
        {
            throw new StartupException($"{key}: '{full}' is a directory, not a file");
        }

        try
        {
            using var probe = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.None);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new StartupException($"{key}: file '{full}' not found", ex);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            throw new StartupException($"{key}: cannot read '{full}': {ex.Message}", ex);
        }

        return full;
    }

    /// <summary>
    /// Fails start-up unless a file at <paramref name="path"/> can be created or opened for writing: the folder
    /// must exist and be writable, and an existing file must open read-write. Creates nothing that stays.
    /// </summary>
    public static string WritableFile(string? path, string key)
    {
        var full = Path.GetFullPath(Required(path, key));
        if (Directory.Exists(full))
        {
            throw new StartupException($"{key}: '{full}' is a directory, not a file");
        }

        var directory = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(directory))
        {
            throw new StartupException($"{key}: folder '{directory}' does not exist");
        }

        try
        {
            if (File.Exists(full))
            {
                using var existing = new FileStream(full, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete, 1);
            }
            else
            {
                // A probe next to the file: proves the folder takes new files (LiteDB also writes a -log file there).
                var probePath = Path.Combine(directory, $".vipd-write-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
                using var probe = new FileStream(probePath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose);
            }
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            throw new StartupException($"{key}: cannot write '{full}': {ex.Message}", ex);
        }

        return full;
    }

    /// <summary>
    /// Parses a duration: <c>250ms</c>, <c>30s</c>, <c>5m</c>, <c>2h</c>, or a TimeSpan (<c>00:00:30</c>),
    /// and checks it lies in [<paramref name="min"/>, <paramref name="max"/>].
    /// </summary>
    public static TimeSpan Duration(string? value, string key, TimeSpan min, TimeSpan max)
    {
        var text = Required(value, key);
        if (!TryParseDuration(text, out var result))
        {
            throw Bad(key, text, "a duration such as 500ms, 30s, 5m or 00:00:30");
        }

        if (result < min || result > max)
        {
            throw new StartupException($"{key}: {text} is out of range ({min} to {max})");
        }

        return result;
    }

    /// <summary>Parses <c>250ms</c>, <c>30s</c>, <c>5m</c>, <c>2h</c> or a TimeSpan (<c>00:00:30</c>); false when it is none.</summary>
    public static bool TryParseDuration(string text, out TimeSpan result)
    {
        (string Suffix, double Scale)[] units = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];
        foreach (var (suffix, scale) in units)
        {
            if (text.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)
                && double.TryParse(text.AsSpan(0, text.Length - suffix.Length), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n))
            {
                result = TimeSpan.FromMilliseconds(n * scale);
                return true;
            }
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out result);
    }

    /// <summary>Parses an integer in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static int Int32(string? value, string key, int min, int max)
    {
        var text = Required(value, key);
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n))
        {
            throw Bad(key, text, "a whole number");
        }

        return n < min || n > max ? throw new StartupException($"{key}: {n} is out of range ({min} to {max})") : n;
    }

    /// <summary>
    /// Runs <paramref name="bind"/> (which binds a listener to <paramref name="endpoint"/>) and turns a bind failure
    /// (address in use, address not on this machine, port below 1024 without the capability) into one line naming
    /// <paramref name="key"/>. Call it from the hosted service's <c>StartAsync</c>.
    /// </summary>
    public static T Bind<T>(string key, EndPoint endpoint, Func<T> bind)
    {
        ArgumentNullException.ThrowIfNull(bind);
        try
        {
            return bind();
        }
        catch (SocketException ex)
        {
            throw CannotListen(key, endpoint, ex);
        }
    }

    /// <summary>The one-line start-up failure for a listener that could not bind.</summary>
    public static StartupException CannotListen(string key, EndPoint endpoint, SocketException ex)
    {
        ArgumentNullException.ThrowIfNull(ex);
        var why = ex.SocketErrorCode switch
        {
            SocketError.AddressAlreadyInUse => "the address is already in use",
            SocketError.AddressNotAvailable => "the address is not on this machine",
            SocketError.AccessDenied => "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)",
            _ => ex.Message,
        };
        return new StartupException($"{key}: cannot listen on {endpoint}: {why}", ex);
    }

    private static void AddCommaSeparated(List<string> items, string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return;
        }

        foreach (var part in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            items.Add(part);
        }
    }

    private static StartupException Bad(string key, string value, string expected)
        => new($"{key}: '{value}' is not {expected}");
}
