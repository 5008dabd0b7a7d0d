using System.Net;
using LiteDB;
using Vip.Store;

namespace Vip.Tests.Store;

/// <summary>The on-disk layout: records packed into pages (schema 3), and the migration from one document per record (schema 2).</summary>
public class StoreLayoutTests : StoreTestBase
{
    [Test]
    public async Task A_schema_2_store_is_migrated_with_servers_clients_and_rules_intact()
    {
        WriteSchema2Store(servers: 150, clients: 70);

        await using (var store = Open())
        {
            var s = store.Snapshot;
            Assert.That(s.Servers, Has.Count.EqualTo(151), "150 and one on IPv6");
            Assert.That(s.Clients, Has.Count.EqualTo(70));
            Assert.That(s.Networks, Has.Count.EqualTo(2));
            var app7 = s.Servers["app-7"].Record;
            Assert.Multiple(() =>
            {
                Assert.That(app7.Service, Is.EqualTo(new IPEndPoint(IPAddress.Parse("10.0.0.7"), 9007)));
                Assert.That(app7.Capacity, Is.EqualTo(16));
                Assert.That(app7.State, Is.EqualTo(ServerState.Draining));
                Assert.That(app7.AdminDrained, Is.True);
                Assert.That(app7.RegisteredAt, Is.EqualTo(DateTimeOffset.FromUnixTimeMilliseconds(1_780_000_000_007)));
                Assert.That(app7.LastSeen, Is.EqualTo(DateTimeOffset.FromUnixTimeMilliseconds(1_780_000_001_007)));
                Assert.That(app7.Attributes, Is.EquivalentTo(Attrs("cores=16", "region=eu")));
                Assert.That(s.Servers["app-v6"].Record.Service, Is.EqualTo(new IPEndPoint(IPAddress.Parse("fd00::7"), 9100)));
                Assert.That(s.Servers["app-v6"].Record.Attributes, Is.Empty);
                Assert.That(s.Servers.Values.Select(e => e.Liveness.HeardFrom), Is.All.False, "servers come back not yet heard from");
                Assert.That(s.Clients["client-3"].Attributes, Is.EquivalentTo(Attrs("pool=gold")));
                Assert.That(s.Clients["client-3"].UpdatedAt, Is.EqualTo(DateTimeOffset.FromUnixTimeMilliseconds(1_780_000_000_003)));
                Assert.That(s.Networks[IPNetwork.Parse("10.1.0.0/16")].Attributes, Is.EquivalentTo(Attrs("region=eu")));
                Assert.That(s.Networks[IPNetwork.Parse("fd00::/8")].Attributes, Is.EquivalentTo(Attrs("v6=yes")));
            });

            // The migrated store takes writes like any other.
            await store.SetClientAsync("client-3", Attrs("pool=std"));
            Assert.That(await store.DeregisterServerAsync("app-8"), Is.True);
        }

        using (var db = RawDatabase())
        {
            Assert.That(db.GetCollection("meta").FindById("schema")["v"].AsInt32, Is.EqualTo(3));
            Assert.That(db.GetCollectionNames(), Is.EquivalentTo(new[] { "meta", "server_pages", "client_pages", "network_pages" }), "the old collections are dropped");
            Assert.That(db.GetCollection("server_pages").Count(), Is.EqualTo(3), "151 servers in pages of 64");
        }

        await using var reopened = Open();
        Assert.That(reopened.Snapshot.Servers, Has.Count.EqualTo(150), "151 less app-8");
        Assert.That(reopened.Snapshot.Servers.ContainsKey("app-8"), Is.False);
        Assert.That(reopened.Snapshot.Clients["client-3"].Attributes, Is.EquivalentTo(Attrs("pool=std")));
    }

    [Test]
    public void A_bad_schema_2_record_fails_the_open_and_leaves_the_old_store_as_it_was()
    {
        WriteSchema2Store(servers: 3, clients: 1);
        using (var db = RawDatabase())
        {
            db.GetCollection("servers").Update(new BsonDocument(db.GetCollection("servers").FindById("app-1")) { ["port"] = 70000 });
        }

        var ex = Assert.Throws<StoreOpenException>(() => Open());
        Assert.That(ex!.Message, Does.Contain("app-1").And.Contain("port"));

        using var after = RawDatabase();
        Assert.That(after.GetCollection("meta").FindById("schema")["v"].AsInt32, Is.EqualTo(2));
        Assert.That(after.GetCollection("servers").Count(), Is.EqualTo(4));
        Assert.That(after.CollectionExists("server_pages"), Is.False);
    }

    [Test]
    public async Task Records_spread_over_many_pages_survive_removals_additions_and_restarts()
    {
        var expected = new Dictionary<string, string>();
        await using (var store = Open(o => o.MaxBatchSize = 7))
        {
            var writes = new List<Task>();
            for (var i = 0; i < 300; i++)
            {
                writes.Add(store.SetClientAsync("c" + i, Attrs("n=" + i)));
                expected["c" + i] = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            for (var i = 0; i < 300; i += 3)
            {
                writes.Add(store.RemoveClientAsync("c" + i));
                expected.Remove("c" + i);
            }

            await Within(Task.WhenAll(writes));
        }

        await using (var store = Open())
        {
            Assert.That(store.Snapshot.Clients.ToDictionary(p => p.Key, p => p.Value.Attributes["n"]), Is.EquivalentTo(expected));
            for (var i = 300; i < 400; i++)
            {
                _ = store.SetClientAsync("c" + i, Attrs("n=" + i));
                expected["c" + i] = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            await store.SetClientAsync("c1", Attrs("n=changed"));
            expected["c1"] = "changed";
            await store.FlushAsync();
        }

        await using var reopened = Open();
        Assert.That(reopened.Snapshot.Clients.ToDictionary(p => p.Key, p => p.Value.Attributes["n"]), Is.EquivalentTo(expected));
    }

    [Test]
    public async Task A_page_left_empty_is_deleted_and_new_records_fill_pages_with_room()
    {
        await using (var store = Open())
        {
            for (var i = 0; i < 130; i++)
            {
                _ = store.SetClientAsync("c" + i, Attrs());
            }

            await store.FlushAsync();
            Assert.That(PageCount("client_pages"), Is.EqualTo(3));

            for (var i = 0; i < 64; i++)
            {
                _ = store.RemoveClientAsync("c" + i); // the whole first page
            }

            await store.FlushAsync();
            Assert.That(PageCount("client_pages"), Is.EqualTo(2));

            await store.SetClientAsync("new", Attrs());
            Assert.That(PageCount("client_pages"), Is.EqualTo(2), "a new record goes to a page with room");
        }

        await using var reopened = Open();
        Assert.That(reopened.Snapshot.Clients, Has.Count.EqualTo(67));
    }

    [Test]
    public async Task A_page_repeating_a_key_fails_the_open_with_one_line()
    {
        await using (var store = Open())
        {
            await store.SetClientAsync("alice", Attrs("a=1"));
        }

        using (var db = RawDatabase())
        {
            var page = db.GetCollection("client_pages").FindById(0);
            var recs = page["recs"].AsBinary;
            db.GetCollection("client_pages").Update(new BsonDocument { ["_id"] = 0, ["recs"] = recs.Concat(recs).ToArray() });
        }

        var ex = Assert.Throws<StoreOpenException>(() => Open());
        Assert.That(ex!.Message, Does.Contain("repeats the key 'alice'").And.Not.Contain('\n'));
    }

    [Test]
    public async Task A_page_cut_short_fails_the_open_with_one_line()
    {
        await using (var store = Open())
        {
            await store.RegisterServerAsync(Server("app-1", attrs: ["region=eu"]));
        }

        using (var db = RawDatabase())
        {
            var recs = db.GetCollection("server_pages").FindById(0)["recs"].AsBinary;
            db.GetCollection("server_pages").Update(new BsonDocument { ["_id"] = 0, ["recs"] = recs[..^3] });
        }

        var ex = Assert.Throws<StoreOpenException>(() => Open());
        Assert.That(ex!.Message, Does.Contain("server_pages page 0").And.Not.Contain('\n'));
    }

    private LiteDatabase RawDatabase() => new(new ConnectionString { Filename = DbPath, Connection = ConnectionType.Direct });

    private int PageCount(string collection)
    {
        // The store holds the file; read a copy.
        var copy = Path.Combine(Dir, "copy-" + Guid.NewGuid().ToString("N") + ".db");
        File.Copy(DbPath, copy);
        using var db = new LiteDatabase(new ConnectionString { Filename = copy, Connection = ConnectionType.Direct });
        return db.GetCollection(collection).Count();
    }

    // Schema 2 as the previous vipd wrote it: one document per record, attributes as count:u8 (key:str8 value:str8)*.
    private void WriteSchema2Store(int servers, int clients)
    {
        using var db = RawDatabase();
        db.GetCollection("meta").Insert(new BsonDocument { ["_id"] = "schema", ["v"] = 2 });
        var col = db.GetCollection("servers");
        for (var i = 0; i < servers; i++)
        {
            col.Insert(new BsonDocument
            {
                ["_id"] = "app-" + i,
                ["addr"] = "10.0.0." + (i % 250),
                ["port"] = 9000 + i,
                ["cap"] = 16,
                ["state"] = i == 7 ? 1 : 0,
                ["drained"] = i == 7,
                ["reg"] = 1_780_000_000_000 + i,
                ["seen"] = 1_780_000_001_000 + i,
                ["attrs"] = AttrBytes(("cores", "16"), ("region", i % 2 == 0 ? "us" : "eu")),
            });
        }

        col.Insert(new BsonDocument
        {
            ["_id"] = "app-v6", ["addr"] = "fd00::7", ["port"] = 9100, ["cap"] = 1, ["state"] = 0, ["drained"] = false,
            ["reg"] = 1_780_000_000_000, ["seen"] = 1_780_000_000_000, ["attrs"] = AttrBytes(),
        });

        for (var i = 0; i < clients; i++)
        {
            db.GetCollection("clients").Insert(new BsonDocument { ["_id"] = "client-" + i, ["upd"] = 1_780_000_000_000 + i, ["attrs"] = AttrBytes(("pool", i % 3 == 0 ? "gold" : "std")) });
        }

        db.GetCollection("networks").Insert(new BsonDocument { ["_id"] = "10.1.0.0/16", ["upd"] = 1_780_000_000_000, ["attrs"] = AttrBytes(("region", "eu")) });
        db.GetCollection("networks").Insert(new BsonDocument { ["_id"] = "fd00::/8", ["upd"] = 1_780_000_000_000, ["attrs"] = AttrBytes(("v6", "yes")) });
        db.Checkpoint();
    }

    private static byte[] AttrBytes(params (string Key, string Value)[] pairs)
    {
        var bytes = new List<byte> { (byte)pairs.Length };
        foreach (var (k, v) in pairs.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            bytes.Add((byte)k.Length);
            bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(k));
            bytes.Add((byte)v.Length);
            bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(v));
        }

        return [.. bytes];
    }
}
