using System.Globalization;
using System.Net;
using Vip.Daemons.Hosting;
using Vip.Store;

namespace Vip.Daemons.Roles;

/// <summary>
/// <c>vipd store-torture --db PATH</c>: a test tool for the store's crash safety (docs/reliability.md). Writes to the
/// store without pause from several tasks and prints one line per write the store acknowledged as durable:
/// <c>ack SEQ</c>. The kill test SIGKILLs it at random moments and checks that every acknowledged write survived.
/// What write a sequence number stands for is <see cref="TortureOps.For"/>, shared with the test.
/// </summary>
internal sealed class StoreTortureRole : IRole
{
    private static readonly Dictionary<string, string> Switches = new(StringComparer.Ordinal)
    {
        ["--db"] = "Torture:Db",
        ["--start"] = "Torture:Start",
        ["--count"] = "Torture:Count",
        ["--concurrency"] = "Torture:Concurrency",
    };

    public string Name => "store-torture";

    public string Summary => "(testing) write to a store without pause, printing each durable write";

    public string Usage => """
        usage: vipd store-torture --db PATH [--start SEQ] [--count N] [--concurrency N]

        A test tool for the store's crash safety: registers servers, sets clients and network rules, removes
        clients, and prints "ack SEQ" for each write once the store says it is durable. Kill it with SIGKILL at any
        moment, reopen the store, and every acknowledged write must be there.

          --db PATH         the store file (its directory must exist)
          --start SEQ       first sequence number (default 1)
          --count N         stop after N writes (default 0: never)
          --concurrency N   writers at once (default 8)
        """;

    public async Task<int> RunAsync(string[] args)
    {
        var config = SwitchParser.Parse(args, Switches, []);
        var db = config.GetValueOrDefault("Torture:Db") ?? throw new StartupException("--db PATH is required");
        var start = Number(config, "Torture:Start", 1);
        var count = Number(config, "Torture:Count", 0);
        var concurrency = (int)Number(config, "Torture:Concurrency", 8);

        VipStore store;
        try
        {
            store = VipStore.Open(new StoreOptions { Path = db, MaxBatchSize = 64 });
        }
        catch (StoreOpenException ex)
        {
            throw new StartupException(ex.Message, ex);
        }

        await using (store.ConfigureAwait(false))
        {
            var gate = new Lock();
            var next = start;
            var end = count > 0 ? start + count : long.MaxValue;
            Console.Out.WriteLine("ready");
            var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
            {
                while (true)
                {
                    long seq;
                    Task write;
                    lock (gate)
                    {
                        // Issue in sequence order, so that for every key memory and disk see the writes in seq order.
                        if (next >= end)
                        {
                            return;
                        }

                        seq = next++;
                        write = TortureOps.For(seq).Apply(store, seq);
                    }

                    await write.ConfigureAwait(false);
                    Console.Out.WriteLine($"ack {seq}");
                }
            })).ToArray();
            await Task.WhenAll(workers).ConfigureAwait(false);
        }

        return ExitCodes.Ok;
    }

    private static long Number(Dictionary<string, string?> config, string key, long fallback) =>
        config.TryGetValue(key, out var v) && v is not null
            ? long.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 0 ? n : throw new StartupException($"{key} must be a number, not '{v}'")
            : fallback;
}

/// <summary>The write a torture sequence number stands for; deterministic, so a checker can recompute it.</summary>
internal readonly record struct TortureOps(TortureKind Kind, string Key)
{
    public const int Servers = 200;
    public const int Clients = 300;
    public const int Networks = 100;

    public static TortureOps For(long seq) => (seq % 5) switch
    {
        0 => new(TortureKind.Server, "s" + (seq / 5 % Servers).ToString(CultureInfo.InvariantCulture)),
        1 or 2 => new(TortureKind.Client, ClientKey(seq)),
        3 => new(TortureKind.Network, $"10.0.{seq / 5 % Networks}.0/24"),
        _ => new(seq / 5 % 3 == 0 ? TortureKind.RemoveClient : TortureKind.Client, ClientKey(seq)),
    };

    public Task Apply(VipStore store, long seq)
    {
        var attrs = new Dictionary<string, string> { ["seq"] = seq.ToString(CultureInfo.InvariantCulture), ["pad"] = new string('x', (int)(seq % 64)) };
        return Kind switch
        {
            TortureKind.Server => store.RegisterServerAsync(new AppServerRegistration(
                Key, new IPEndPoint(IPAddress.Loopback, 10000 + (int)(seq % 50000)), attrs, (int)(seq % 100))),
            TortureKind.Client => store.SetClientAsync(Key, attrs),
            TortureKind.Network => store.SetNetworkRuleAsync(IPNetwork.Parse(Key), attrs),
            _ => store.RemoveClientAsync(Key),
        };
    }

    private static string ClientKey(long seq) => "c" + (seq * 7 % Clients).ToString(CultureInfo.InvariantCulture);
}

internal enum TortureKind
{
    Server,
    Client,
    Network,
    RemoveClient,
}
