using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace Vip.Daemons.Hosting;

/// <summary>
/// The optional Prometheus scrape endpoint (<c>--metrics HOST:PORT</c>, key <c>Metrics:Listen</c>; off when unset),
/// served by OpenTelemetry's HttpListener exporter. Exports every Meter named <c>Vip.*</c> plus the runtime's
/// own <c>System.Runtime</c> meter; roles only create their <c>System.Diagnostics.Metrics.Meter</c>s.
/// </summary>
internal static class MetricsExport
{
    /// <summary>Configuration key of the scrape endpoint.</summary>
    public const string ListenKey = "Metrics:Listen";

    /// <summary>Meter name patterns exported.</summary>
    public static readonly string[] Meters = ["Vip.*", "System.Runtime"];

    /// <summary>Adds the exporter when <see cref="ListenKey"/> is set; returns the endpoint or null.</summary>
    public static IPEndPoint? AddIfConfigured(HostApplicationBuilder builder, string role)
    {
        var value = builder.Configuration[ListenKey];
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        // HttpListener cannot take "any free port", so port 0 is refused here rather than failing obscurely later.
        var endpoint = ConfigParse.Endpoint(value, ListenKey, allowPortZero: false);
        var host = endpoint.Address.Equals(IPAddress.Any) ? "+"
            : endpoint.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{endpoint.Address}]"
            : endpoint.Address.ToString();

        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("vipd-" + role, serviceInstanceId: $"{Environment.MachineName}:{Environment.ProcessId}"))
            .WithMetrics(metrics =>
        {
            metrics.AddMeter(Meters);
            metrics.AddPrometheusHttpListener(o =>
            {
                o.Host = host;
                o.Port = endpoint.Port;
                o.ScrapeEndpointPath = "/metrics";
            });
        });
        return endpoint;
    }
}
