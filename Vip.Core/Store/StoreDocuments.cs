using System.Collections.Immutable;
using System.Net;
using System.Text;
using LiteDB;

namespace Vip.Store;

/// <summary>The three collections a store persists.</summary>
internal enum StoreCollection : byte
{
    Servers,
    Clients,
    Networks,
}

/// <summary>
/// The LiteDB side of the store: opening the file, the schema marker, and the mapping between records and BSON
/// documents (by hand, not BsonMapper: explicit field names, no reflection, no time-zone conversions).
/// </summary>
/// <remarks>
/// <code>
/// servers  { _id: id, addr: "ip", port: int, cap: int, state: int, drained: bool, reg: unixMs, seen: unixMs, attrs: binary }
/// clients  { _id: id, upd: unixMs, attrs: binary }
/// networks { _id: "10.1.0.0/16", upd: unixMs, attrs: binary }
/// meta     { _id: "schema", v: 2 }
/// attrs    := count:u8 (key:str8 value:str8){count}      ; the wire's attrs encoding, keys sorted
/// </code>
/// Attributes are one binary value rather than a sub-document: any key text (dots, dollars) is stored as is, and
/// loading 10 000 records is several times faster than with nested BSON arrays (docs/benchmarks.md).
/// </remarks>
internal static class StoreDocuments
{
    public const int SchemaVersion = 2; // 2: attributes as one binary value

    public static string CollectionName(StoreCollection c) => c switch
    {
        StoreCollection.Servers => "servers",
        StoreCollection.Clients => "clients",
        _ => "networks",
    };

    public static LiteDatabase OpenDatabase(string path) =>
        new(new ConnectionString
        {
            Filename = path,
            Connection = ConnectionType.Direct,
            Upgrade = false,
            AutoRebuild = false,
        });

    /// <summary>Checks (or, in an empty file, writes) the schema marker. Throws <see cref="InvalidDataException"/> for a foreign file.</summary>
    public static void EnsureSchema(LiteDatabase db)
    {
        var meta = db.GetCollection("meta");
        var schema = meta.FindById("schema");
        if (schema is null)
        {
            var names = db.GetCollectionNames().ToList();
            if (names.Count > 0)
            {
                throw new InvalidDataException($"it is a LiteDB file but not a Vip store (it holds collections {string.Join(", ", names)})");
            }

            meta.Insert(new BsonDocument { ["_id"] = "schema", ["v"] = SchemaVersion });
            db.Checkpoint();
            return;
        }

        if (!schema.TryGetValue("v", out var v) || !v.IsInt32 || v.AsInt32 != SchemaVersion)
        {
            throw new InvalidDataException($"its schema version is {schema["v"]}, this vipd reads version {SchemaVersion}");
        }
    }

    /// <summary>
    /// Empties the log. A checkpoint alone leaves it as it is when it holds only the pages of a transaction that a
    /// crash cut short (LiteDB skips a checkpoint without a committed transaction); committing one small write gives
    /// the checkpoint something to do, and it truncates the log.
    /// </summary>
    public static void EmptyLog(LiteDatabase db)
    {
        var meta = db.GetCollection("meta");
        meta.Upsert(new BsonDocument { ["_id"] = "schema", ["v"] = SchemaVersion });
        db.Checkpoint();
    }

    public static string LogPathOf(string path) => Path.Combine(
        Path.GetDirectoryName(path)!,
        Path.GetFileNameWithoutExtension(path) + "-log" + Path.GetExtension(path));

    public static StoreSnapshot Load(LiteDatabase db)
    {
        var servers = ImmutableDictionary.CreateBuilder<string, ServerEntry>(StringComparer.Ordinal);
        foreach (var doc in db.GetCollection(CollectionName(StoreCollection.Servers)).FindAll())
        {
            var r = ToServer(doc);
            servers[r.Id] = new ServerEntry(r, new ServerLiveness());
        }

        var clients = ImmutableDictionary.CreateBuilder<string, ClientRecord>(StringComparer.Ordinal);
        foreach (var doc in db.GetCollection(CollectionName(StoreCollection.Clients)).FindAll())
        {
            var r = ToClient(doc);
            clients[r.Id] = r;
        }

        var networks = ImmutableDictionary.CreateBuilder<IPNetwork, NetworkRule>();
        foreach (var doc in db.GetCollection(CollectionName(StoreCollection.Networks)).FindAll())
        {
            var r = ToNetwork(doc);
            networks[r.Network] = r;
        }

        return new StoreSnapshot(1, servers.ToImmutable(), clients.ToImmutable(), networks.ToImmutable());
    }

    public static BsonDocument ToDocument(object record) => record switch
    {
        AppServerRecord s => new BsonDocument
        {
            ["_id"] = s.Id,
            ["addr"] = s.Service.Address.ToString(),
            ["port"] = s.Service.Port,
            ["cap"] = s.Capacity,
            ["state"] = (int)s.State,
            ["drained"] = s.AdminDrained,
            ["reg"] = s.RegisteredAt.ToUnixTimeMilliseconds(),
            ["seen"] = s.LastSeen.ToUnixTimeMilliseconds(),
            ["attrs"] = ToBson(s.Attributes),
        },
        ClientRecord c => new BsonDocument
        {
            ["_id"] = c.Id,
            ["upd"] = c.UpdatedAt.ToUnixTimeMilliseconds(),
            ["attrs"] = ToBson(c.Attributes),
        },
        NetworkRule n => new BsonDocument
        {
            ["_id"] = n.Network.ToString(),
            ["upd"] = n.UpdatedAt.ToUnixTimeMilliseconds(),
            ["attrs"] = ToBson(n.Attributes),
        },
        _ => throw new ArgumentException("not a store record", nameof(record)),
    };

    private static AppServerRecord ToServer(BsonDocument d)
    {
        var id = Str(d, "_id");
        var address = IPAddress.TryParse(Str(d, "addr"), out var a) ? a : throw Bad(d, "addr");
        var port = Int(d, "port");
        if (port is < 0 or > 65535)
        {
            throw Bad(d, "port");
        }

        var state = Int(d, "state");
        if (state is not (0 or 1))
        {
            throw Bad(d, "state");
        }

        return new AppServerRecord(
            id,
            new IPEndPoint(address, port),
            FromBson(d),
            Int(d, "cap"),
            (ServerState)state,
            d.TryGetValue("drained", out var dr) && dr.IsBoolean ? dr.AsBoolean : throw Bad(d, "drained"),
            Time(d, "reg"),
            Time(d, "seen"));
    }

    private static ClientRecord ToClient(BsonDocument d) => new(Str(d, "_id"), FromBson(d), Time(d, "upd"));

    private static NetworkRule ToNetwork(BsonDocument d) =>
        new(IPNetwork.TryParse(Str(d, "_id"), out var n) ? n : throw Bad(d, "_id"), FromBson(d), Time(d, "upd"));

    private static BsonValue ToBson(IReadOnlyDictionary<string, string> attributes)
    {
        // Caps (≤ 255 pairs, ≤ 255 bytes each) are checked when the record enters the store.
        var length = 1;
        foreach (var (k, v) in attributes)
        {
            length += 2 + Encoding.UTF8.GetByteCount(k) + Encoding.UTF8.GetByteCount(v);
        }

        var bytes = new byte[length];
        bytes[0] = (byte)attributes.Count;
        var at = 1;
        foreach (var (k, v) in attributes.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            at += WriteStr8(bytes.AsSpan(at), k);
            at += WriteStr8(bytes.AsSpan(at), v);
        }

        return new BsonValue(bytes);
    }

    private static int WriteStr8(Span<byte> destination, string s)
    {
        var n = Encoding.UTF8.GetBytes(s, destination[1..]);
        destination[0] = (byte)n;
        return n + 1;
    }

    private static IReadOnlyDictionary<string, string> FromBson(BsonDocument d)
    {
        if (!d.TryGetValue("attrs", out var value) || !value.IsBinary)
        {
            throw Bad(d, "attrs");
        }

        var bytes = value.AsBinary.AsSpan();
        if (bytes.Length == 0)
        {
            throw Bad(d, "attrs");
        }

        int count = bytes[0];
        if (count == 0)
        {
            return bytes.Length == 1 ? Attributes.Empty : throw Bad(d, "attrs");
        }

        var pairs = new Dictionary<string, string>(count, StringComparer.Ordinal);
        var at = 1;
        for (var i = 0; i < count; i++)
        {
            if (!TryReadStr8(bytes, ref at, out var k) || !TryReadStr8(bytes, ref at, out var v) || k.Length == 0 || !pairs.TryAdd(k, v))
            {
                throw Bad(d, "attrs");
            }
        }

        return at == bytes.Length ? pairs.AsReadOnly() : throw Bad(d, "attrs");
    }

    private static bool TryReadStr8(ReadOnlySpan<byte> bytes, ref int at, out string value)
    {
        value = "";
        if (at >= bytes.Length || at + 1 + bytes[at] > bytes.Length)
        {
            return false;
        }

        int n = bytes[at];
        value = Encoding.UTF8.GetString(bytes.Slice(at + 1, n));
        at += 1 + n;
        return true;
    }

    private static string Str(BsonDocument d, string field) =>
        d.TryGetValue(field, out var v) && v.IsString && v.AsString.Length > 0 ? v.AsString : throw Bad(d, field);

    private static int Int(BsonDocument d, string field) =>
        d.TryGetValue(field, out var v) && v.IsInt32 ? v.AsInt32 : throw Bad(d, field);

    private static DateTimeOffset Time(BsonDocument d, string field) =>
        d.TryGetValue(field, out var v) && (v.IsInt64 || v.IsInt32) ? DateTimeOffset.FromUnixTimeMilliseconds(v.AsInt64) : throw Bad(d, field);

    private static InvalidDataException Bad(BsonDocument d, string field)
    {
        var id = d.TryGetValue("_id", out var v) ? v.ToString() : "(no _id)";
        return new InvalidDataException($"record {id} has a missing or invalid '{field}'");
    }
}
