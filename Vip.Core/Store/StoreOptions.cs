namespace Vip.Store;

/// <summary>Options of a <see cref="VipStore"/> (configuration section <c>Store</c> of a tier-2 daemon).</summary>
public sealed class StoreOptions
{
    /// <summary>The LiteDB data file (e.g. <c>/var/lib/vipd/tier2.db</c>). Required; its directory must exist. The file is created if missing.</summary>
    public string Path { get; set; } = "";

    /// <summary>Most writes in one LiteDB transaction; bounds the LiteDB log between checkpoints. Default 512; 1 .. 10 000.</summary>
    public int MaxBatchSize { get; set; } = 512;

    /// <summary>First wait before retrying a failed write batch; doubles up to <see cref="RetryMaxDelay"/>. Default 100 ms.</summary>
    public TimeSpan RetryInitialDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest wait between retries of a failed write batch. Default 5 s.</summary>
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long disposing the store waits for accepted writes to reach the disk. Default 10 s.</summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Most app servers. Default 100 000.</summary>
    public int MaxServers { get; set; } = 100_000;

    /// <summary>Most client records. Default 1 000 000.</summary>
    public int MaxClients { get; set; } = 1_000_000;

    /// <summary>Most network rules. Default 100 000.</summary>
    public int MaxNetworkRules { get; set; } = 100_000;

    /// <summary>Most attributes on one record; the wire's <c>attrs</c> cap. Default 32; 0 .. 255.</summary>
    public int MaxAttributes { get; set; } = 32;

    /// <summary>Throws <see cref="ArgumentException"/> when a value is missing or out of range.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Path))
        {
            throw new ArgumentException("Store:Path is required (the LiteDB file of this tier-2 daemon)", nameof(Path));
        }

        Check(MaxBatchSize, 1, 10_000, nameof(MaxBatchSize));
        Check(MaxServers, 1, 10_000_000, nameof(MaxServers));
        Check(MaxClients, 1, 100_000_000, nameof(MaxClients));
        Check(MaxNetworkRules, 1, 10_000_000, nameof(MaxNetworkRules));
        Check(MaxAttributes, 0, 255, nameof(MaxAttributes));
        if (RetryInitialDelay <= TimeSpan.Zero || RetryMaxDelay < RetryInitialDelay || RetryMaxDelay > TimeSpan.FromMinutes(10))
        {
            throw new ArgumentOutOfRangeException(nameof(RetryInitialDelay), "Store:RetryInitialDelay must be > 0 and ≤ Store:RetryMaxDelay ≤ 10 min");
        }

        if (ShutdownTimeout < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ShutdownTimeout), ShutdownTimeout, "Store:ShutdownTimeout must be ≥ 0");
        }
    }

    private static void Check(int value, int min, int max, string name)
    {
        if (value < min || value > max)
        {
            throw new ArgumentOutOfRangeException(name, value, $"Store:{name} must be {min} .. {max}");
        }
    }
}
