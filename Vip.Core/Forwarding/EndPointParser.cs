using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Vip.Forwarding;

/// <summary>Parses <c>HOST:PORT</c> strings (<c>127.0.0.1:80</c>, <c>[::1]:80</c>, <c>name:80</c>, <c>*:80</c>).</summary>
internal static class EndPointParser
{
    /// <summary>Splits a comma-separated list, trimming and dropping empty items.</summary>
    public static string[] SplitList(string? text)
        => string.IsNullOrWhiteSpace(text) ? [] : text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    public static bool TryParse(string? text, out string host, out int port)
    {
        host = "";
        port = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        text = text.Trim();
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1)
        {
            return false;
        }

        if (!int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) || port > 65535)
        {
            return false;
        }

        host = text[..colon];
        if (host.StartsWith('['))
        {
            if (!host.EndsWith(']'))
            {
                return false;
            }

            host = host[1..^1];
            return IPAddress.TryParse(host, out var v6) && v6.AddressFamily == AddressFamily.InterNetworkV6;
        }

        // An unbracketed IPv6 literal would be ambiguous with the port separator.
        return !host.Contains(':', StringComparison.Ordinal) && host.Length > 0;
    }

    /// <summary>Resolves a listen address: <c>*</c> is every address (dual-stack IPv6 any).</summary>
    public static IPEndPoint ResolveListen(string text)
    {
        if (!TryParse(text, out var host, out var port))
        {
            throw new FormatException($"'{text}' is not HOST:PORT");
        }

        return host == "*" ? new IPEndPoint(IPAddress.IPv6Any, port) : new IPEndPoint(ResolveHost(host), port);
    }

    /// <summary>Resolves a backend address (names through DNS, IPv4 preferred).</summary>
    public static IPEndPoint ResolveBackend(string text)
    {
        if (!TryParse(text, out var host, out var port) || host == "*" || port == 0)
        {
            throw new FormatException($"'{text}' is not HOST:PORT");
        }

        return new IPEndPoint(ResolveHost(host), port);
    }

    private static IPAddress ResolveHost(string host)
    {
        if (IPAddress.TryParse(host, out var address))
        {
            return address;
        }

        var addresses = Dns.GetHostAddresses(host);
        return addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)
            ?? addresses.FirstOrDefault()
            ?? throw new SocketException((int)SocketError.HostNotFound);
    }
}
