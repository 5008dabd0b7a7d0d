using System.Net;
using Vip.Store;

namespace Vip.Tests.Store;

public class StoreConcurrencyTests : StoreTestBase
{
    [Test]
    public async Task Concurrent_registrations_heartbeats_and_admin_writes_do_not_corrupt_the_store()
    {
        const int Tasks = 8;
        const int OpsPerTask = 100;
        await using (var store = Open(o => o.MaxBatchSize = 32))
        {
            var snapshotsSeen = 0;
            store.Changed += (_, e) =>
            {
                // Every event carries a snapshot at least as new as the one before it.
                Interlocked.Increment(ref snapshotsSeen);
            };

            var workers = Enumerable.Range(0, Tasks).Select(t => Task.Run(async () =>
            {
                var rng = new Random(t);
                var acks = new List<Task>();
                for (var i = 0; i < OpsPerTask; i++)
                {
                    var id = rng.Next(40);
                    switch (rng.Next(6))
                    {
                        case 0:
                            acks.Add(store.RegisterServerAsync(Server("s" + id, 9000 + id, id, $"t={t}", $"i={i}")));
                            break;
                        case 1:
                            store.Heartbeat("s" + id, rng.Next(2) == 0 ? ServerState.Up : ServerState.Draining, rng.Next(1000), rng.Next(50));
                            break;
                        case 2:
                            acks.Add(store.SetClientAsync("c" + id, Attrs($"t={t}", $"i={i}")));
                            break;
                        case 3:
                            acks.Add(store.RemoveClientAsync("c" + id));
                            break;
                        case 4:
                            acks.Add(store.SetNetworkRuleAsync(new IPNetwork(IPAddress.Parse($"10.{id}.0.0"), 16), Attrs($"t={t}")));
                            break;
                        default:
                            acks.Add(store.SetServerDrainedAsync("s" + id, rng.Next(2) == 0));
                            break;
                    }

                    if (i % 10 == 0)
                    {
                        _ = store.Snapshot.Servers.Count; // readers run alongside
                    }
                }

                await Task.WhenAll(acks);
            })).ToArray();

            await Within(Task.WhenAll(workers), 60);
            await store.FlushAsync();
            Assert.That(store.PendingWrites, Is.Zero);
            Assert.That(snapshotsSeen, Is.GreaterThan(0));
            Expected = store.Snapshot;
        }

        // The file holds exactly what memory held at the end.
        await using var reopened = Open();
        var actual = reopened.Snapshot;
        Assert.That(actual.Servers.Keys, Is.EquivalentTo(Expected.Servers.Keys));
        foreach (var (id, entry) in Expected.Servers)
        {
            Assert.That(SameRecord(actual.Servers[id].Record, entry.Record), Is.True, id);
            Assert.That(actual.Servers[id].Record.Attributes, Is.EquivalentTo(entry.Record.Attributes), id);
        }

        Assert.That(actual.Clients.Keys, Is.EquivalentTo(Expected.Clients.Keys));
        foreach (var (id, c) in Expected.Clients)
        {
            Assert.That(actual.Clients[id].Attributes, Is.EquivalentTo(c.Attributes), id);
        }

        Assert.That(actual.Networks.Keys, Is.EquivalentTo(Expected.Networks.Keys));
    }

    private StoreSnapshot Expected { get; set; } = null!;

    private static bool SameRecord(AppServerRecord a, AppServerRecord b) =>
        a.Id == b.Id && a.Service.Equals(b.Service) && a.Capacity == b.Capacity && a.State == b.State
        && a.AdminDrained == b.AdminDrained
        && a.RegisteredAt.ToUnixTimeMilliseconds() == b.RegisteredAt.ToUnixTimeMilliseconds()
        && a.LastSeen.ToUnixTimeMilliseconds() == b.LastSeen.ToUnixTimeMilliseconds();

    [Test]
    public async Task Many_writes_to_one_key_end_with_the_last_one()
    {
        await using (var store = Open())
        {
            var writes = new List<Task>();
            for (var i = 0; i < 2000; i++)
            {
                writes.Add(store.SetClientAsync("hot", Attrs("n=" + i)));
            }

            await Within(Task.WhenAll(writes));
        }

        await using var reopened = Open();
        Assert.That(reopened.Snapshot.Clients["hot"].Attributes["n"], Is.EqualTo("1999"));
    }

    [Test]
    public async Task Flush_waits_for_every_earlier_write()
    {
        await using var store = Open(o => o.MaxBatchSize = 7);
        var writes = Enumerable.Range(0, 200).Select(i => store.SetClientAsync("c" + i, Attrs())).ToList();
        await Within(store.FlushAsync());
        Assert.That(writes.Select(w => w.IsCompletedSuccessfully), Is.All.True);
    }
}
