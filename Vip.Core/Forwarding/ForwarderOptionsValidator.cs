using Microsoft.Extensions.Options;

namespace Vip.Forwarding;

/// <summary>Checks <see cref="ForwarderOptions"/>: addresses parse, every number and duration is in range.</summary>
public sealed class ForwarderOptionsValidator : IValidateOptions<ForwarderOptions>
{
    /// <inheritdoc/>
    public ValidateOptionsResult Validate(string? name, ForwarderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        var listen = EndPointParser.SplitList(options.Listen);
        if (listen.Length == 0)
        {
            failures.Add("Vip:Listen is required (HOST:PORT)");
        }

        foreach (var item in listen)
        {
            if (!EndPointParser.TryParse(item, out _, out _))
            {
                failures.Add($"Vip:Listen '{item}' is not HOST:PORT");
            }
        }

        if (!string.IsNullOrWhiteSpace(options.UdpListen) && !EndPointParser.TryParse(options.UdpListen, out _, out _))
        {
            failures.Add($"Vip:UdpListen '{options.UdpListen}' is not HOST:PORT");
        }

        CheckBackends("Vip:Backends", options.Backends, required: true, failures);
        CheckBackends("Vip:UdpBackends", options.UdpBackends, required: false, failures);

        Positive("Vip:ConnectTimeout", options.ConnectTimeout, failures);
        Positive("Vip:IdleTimeout", options.IdleTimeout, failures);
        if (options.DrainTimeout < TimeSpan.Zero)
        {
            failures.Add("Vip:DrainTimeout must not be negative");
        }

        Range("Vip:MaxConnectAttempts", options.MaxConnectAttempts, 1, ForwarderOptions.MaxBackends, failures);
        Range("Vip:MaxConnections", options.MaxConnections, 1, 1_000_000, failures);
        Range("Vip:MaxConnectionsPerSource", options.MaxConnectionsPerSource, 0, 1_000_000, failures);
        Range("Vip:ListenBacklog", options.ListenBacklog, 1, 65535, failures);
        Range("Vip:MinReadSize", options.MinReadSize, 512, 16 * 1024 * 1024, failures);
        Range("Vip:MaxReadSize", options.MaxReadSize, options.MinReadSize, 16 * 1024 * 1024, failures);
        Range("Vip:MaxBufferedBytes", options.MaxBufferedBytes, options.MinReadSize, 256 * 1024 * 1024, failures);

        if (!Enum.IsDefined(options.Transport))
        {
            failures.Add($"Vip:Transport '{options.Transport}' is not Auto, Epoll or Sockets");
        }
        else if (options.Transport == RelayTransport.Epoll && !Epoll.LinuxSockets.IsSupported)
        {
            failures.Add("Vip:Transport Epoll needs Linux on x64 or arm64; use Auto or Sockets");
        }

        Range("Vip:RelayThreads", options.RelayThreads, 0, 16, failures);

        var hc = options.HealthCheck;
        if (!Enum.IsDefined(hc.Mode))
        {
            failures.Add($"Vip:HealthCheck:Mode '{hc.Mode}' is not None, Tcp or Ping");
        }

        Positive("Vip:HealthCheck:Interval", hc.Interval, failures);
        Positive("Vip:HealthCheck:Timeout", hc.Timeout, failures);
        Range("Vip:HealthCheck:Rise", hc.Rise, 1, 100, failures);
        Range("Vip:HealthCheck:Fall", hc.Fall, 1, 100, failures);

        Positive("Vip:Udp:SessionIdleTimeout", options.Udp.SessionIdleTimeout, failures);
        Range("Vip:Udp:MaxSessions", options.Udp.MaxSessions, 1, 1_000_000, failures);
        Range("Vip:Udp:ReceiveBufferSize", options.Udp.ReceiveBufferSize, 4096, UdpForwarderOptions.MaxBufferSize, failures);
        Range("Vip:Udp:SessionReceiveBufferSize", options.Udp.SessionReceiveBufferSize, 4096, UdpForwarderOptions.MaxBufferSize, failures);

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void CheckBackends(string key, IList<BackendOptions> backends, bool required, List<string> failures)
    {
        if (required && backends.Count == 0)
        {
            failures.Add($"{key} needs at least one HOST:PORT");
        }

        if (backends.Count > ForwarderOptions.MaxBackends)
        {
            failures.Add($"{key} has {backends.Count} entries; at most {ForwarderOptions.MaxBackends}");
        }

        for (var i = 0; i < backends.Count; i++)
        {
            var b = backends[i];
            if (!EndPointParser.TryParse(b.Address, out var host, out var port) || host == "*" || port == 0)
            {
                failures.Add($"{key}:{i} '{b.Address}' is not HOST:PORT");
            }

            Range($"{key}:{i}:Weight", b.Weight, 1, BackendOptions.MaxWeight, failures);
        }
    }

    private static void Positive(string key, TimeSpan value, List<string> failures)
    {
        if (value <= TimeSpan.Zero || value > TimeSpan.FromDays(1))
        {
            failures.Add($"{key} must be more than 0 and at most a day (is {value})");
        }
    }

    private static void Range(string key, int value, int min, int max, List<string> failures)
    {
        if (value < min || value > max)
        {
            failures.Add($"{key} must be between {min} and {max} (is {value})");
        }
    }
}
