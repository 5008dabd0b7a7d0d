using System.Net;
using Vip.Protocol;

namespace Vip.Client;

/// <summary>How <see cref="VipClient"/> reaches the VIP address.</summary>
public enum VipTransport
{
    /// <summary>One persistent TCP connection, many tasks in flight on it (default).</summary>
    Tcp = 0,
    /// <summary>One datagram per task and per answer; the task must fit in one datagram.</summary>
    Udp = 1,
}

/// <summary>Configuration of a <see cref="VipClient"/>.</summary>
public sealed class VipClientOptions
{
    /// <summary>The VIP address (or, without a VIP box, a tier-1 daemon). Required.</summary>
    public EndPoint? Vip { get; set; }

    /// <summary>TCP (default) or UDP towards the VIP address.</summary>
    public VipTransport Transport { get; set; } = VipTransport.Tcp;

    /// <summary>
    /// Local address to send from, for the VIP connection and the app-server connection alike (the ticket is bound
    /// to the client's address, so both must leave from the same one). Default null: the system chooses.
    /// </summary>
    public IPAddress? LocalAddress { get; set; }

    /// <summary>Deadline to connect (to the VIP address and to the app server). Default 5 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Deadline for one answer (REDIRECT/REJECT, CLAIM-OK, RESULT) before the hop counts as failed. Default 5 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Deadline for the app server's RESULT to a task (the computation included). Default 30 s.</summary>
    public TimeSpan TaskTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Deadline for one UDP attempt before the datagram is sent again. Default 1 s.</summary>
    public TimeSpan UdpAttemptTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Attempts per operation, the first included (transport failures and retryable REJECTs). Default 3.</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>First retry delay; doubles per attempt, with ±50 % jitter, up to <see cref="MaxBackoff"/>. Default 50 ms.</summary>
    public TimeSpan BaseBackoff { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Longest retry delay from backoff. Default 1 s.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Longest retry-after honoured: a REJECT asking to wait longer (or giving no retry-after for a code that needs
    /// one) is returned to the caller instead of being retried. Default 1 s.
    /// </summary>
    public TimeSpan MaxRetryAfter { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Tasks in flight on the VIP connection; further submissions wait. Default 1,024.</summary>
    public int MaxInFlight { get; set; } = 1024;

    /// <summary>Caps on frames received. Default <see cref="ProtocolLimits.Default"/>.</summary>
    public ProtocolLimits Limits { get; set; } = ProtocolLimits.Default;

    /// <summary>Clock for deadlines and backoff (tests inject a fake one). Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Randomness for backoff jitter. Default <see cref="Random.Shared"/>.</summary>
    public Random Random { get; set; } = Random.Shared;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (Vip is null)
        {
            throw new ArgumentException("Vip (the VIP address) is required", nameof(Vip));
        }

        if (MaxAttempts is < 1 or > 100)
        {
            throw new ArgumentException("MaxAttempts must be between 1 and 100", nameof(MaxAttempts));
        }

        if (MaxInFlight < 1)
        {
            throw new ArgumentException("MaxInFlight must be at least 1", nameof(MaxInFlight));
        }

        foreach (var (value, name) in new[] { (ConnectTimeout, nameof(ConnectTimeout)), (RequestTimeout, nameof(RequestTimeout)), (TaskTimeout, nameof(TaskTimeout)), (UdpAttemptTimeout, nameof(UdpAttemptTimeout)), (BaseBackoff, nameof(BaseBackoff)), (MaxBackoff, nameof(MaxBackoff)) })
        {
            if (value <= TimeSpan.Zero)
            {
                throw new ArgumentException($"{name} must be positive", name);
            }
        }

        if (MaxRetryAfter < TimeSpan.Zero)
        {
            throw new ArgumentException("MaxRetryAfter must not be negative", nameof(MaxRetryAfter));
        }

        ArgumentNullException.ThrowIfNull(Limits);
        Limits.Validate();
        ArgumentNullException.ThrowIfNull(TimeProvider);
        ArgumentNullException.ThrowIfNull(Random);
    }
}
