using System.Buffers.Binary;
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
/// The LiteDB side of the store: opening the file, the schema marker, the migration from the previous layout, and
/// the encoding of records (by hand, not BsonMapper: explicit fields, no reflection, no time-zone conversions).
/// </summary>
/// <remarks>
/// Layout (schema 3): records are packed into pages of at most <see cref="MaxRecordsPerPage"/>, one LiteDB document
/// per page, so a restart reads a few hundred documents instead of one per record (LiteDB's cost is per document:
/// docs/benchmarks.md, "Store"). A change rewrites the one page that holds the record.
/// <code>
/// server_pages  { _id: page (int), recs: binary }   recs := server*
/// client_pages  { _id: page (int), recs: binary }   recs := client*
/// network_pages { _id: page (int), recs: binary }   recs := network*
/// meta          { _id: "schema", v: 3 }
/// server  := id:str8 addr:str8 port:u16 cap:i32 state:u8 drained:u8 reg:i64 seen:i64 attrs   ; times in Unix ms
/// client  := id:str8 upd:i64 attrs
/// network := cidr:str8 upd:i64 attrs
/// attrs   := count:u8 (key:str8 value:str8){count}                                          ; keys sorted
/// str8    := length:u8 UTF-8 bytes; integers little-endian
/// </code>
/// Schema 2 (one document per record in <c>servers</c>, <c>clients</c>, <c>networks</c>) is migrated in one
/// transaction when a store is opened (<see cref="EnsureSchema"/>).
/// </remarks>
internal static class StoreDocuments
{
    public const int SchemaVersion = 3; // 2: one document per record; 3: records packed into pages
    public const int MaxRecordsPerPage = 64;
    private const int PreviousSchemaVersion = 2;

    public static string CollectionName(StoreCollection c) => c switch
    {
        StoreCollection.Servers => "server_pages",
        StoreCollection.Clients => "client_pages",
        _ => "network_pages",
    };

    public static LiteDatabase OpenDatabase(string path) =>
        new(new ConnectionString
        {
            Filename = path,
            Connection = ConnectionType.Direct,
            Upgrade = false,
            AutoRebuild = false,
        });

    /// <summary>
    /// Checks (or, in an empty file, writes) the schema marker, and migrates a schema-2 store to the current layout.
    /// Throws <see cref="InvalidDataException"/> for a foreign file or an unknown version.
    /// </summary>
    /// <returns>True when the store was migrated.</returns>
    public static bool EnsureSchema(LiteDatabase db)
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
            return false;
        }

        if (schema.TryGetValue("v", out var v) && v.IsInt32 && v.AsInt32 == PreviousSchemaVersion)
        {
            V2.Migrate(db);
            return true;
        }

        if (!schema.TryGetValue("v", out v) || !v.IsInt32 || v.AsInt32 != SchemaVersion)
        {
            throw new InvalidDataException($"its schema version is {schema["v"]}, this vipd reads versions {PreviousSchemaVersion} and {SchemaVersion}");
        }

        V2.DropLeftovers(db); // a crash between a migration's commit and its clean-up leaves the old, empty-of-meaning collections
        return false;
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

    /// <summary>Reads every page into a snapshot (servers not yet heard from) and the writer's map of pages.</summary>
    public static StoreSnapshot Load(LiteDatabase db, out StorePages pages)
    {
        pages = new StorePages();
        var servers = ImmutableDictionary.CreateBuilder<string, ServerEntry>(StringComparer.Ordinal);
        var clients = ImmutableDictionary.CreateBuilder<string, ClientRecord>(StringComparer.Ordinal);
        var networks = ImmutableDictionary.CreateBuilder<IPNetwork, NetworkRule>();
        var pool = new StringPool();
        foreach (var c in (ReadOnlySpan<StoreCollection>)[StoreCollection.Servers, StoreCollection.Clients, StoreCollection.Networks])
        {
            var book = pages[c];
            foreach (var doc in db.GetCollection(CollectionName(c)).FindAll())
            {
                var page = doc.TryGetValue("_id", out var id) && id.IsInt32 && id.AsInt32 >= 0 ? id.AsInt32 : throw new InvalidDataException($"a page of {CollectionName(c)} has no valid _id");
                var bytes = doc.TryGetValue("recs", out var recs) && recs.IsBinary ? recs.AsBinary : throw new InvalidDataException($"page {page} of {CollectionName(c)} has no 'recs'");
                var reader = new RecordReader(bytes, CollectionName(c), page, pool);
                while (!reader.AtEnd)
                {
                    switch (c)
                    {
                        case StoreCollection.Servers:
                            var s = reader.Server();
                            book.Load(page, s.Id, s, reader);
                            servers.Add(s.Id, new ServerEntry(s, new ServerLiveness()));
                            break;
                        case StoreCollection.Clients:
                            var cl = reader.Client();
                            book.Load(page, cl.Id, cl, reader);
                            clients.Add(cl.Id, cl);
                            break;
                        default:
                            var n = reader.Network(out var key);
                            book.Load(page, key, n, reader);
                            networks.Add(n.Network, n);
                            break;
                    }
                }
            }
        }

        return new StoreSnapshot(1, servers.ToImmutable(), clients.ToImmutable(), networks.ToImmutable());
    }

    /// <summary>The document of one page holding <paramref name="records"/> (records of one collection).</summary>
    public static BsonDocument PageDocument(int page, IReadOnlyCollection<object> records)
    {
        var length = 0;
        foreach (var r in records)
        {
            length += EncodedLength(r);
        }

        var bytes = new byte[length];
        var at = 0;
        foreach (var r in records)
        {
            at += Encode(r, bytes.AsSpan(at));
        }

        return new BsonDocument { ["_id"] = page, ["recs"] = bytes };
    }

    /// <summary>The key a record is filed under in its collection (the same key the store's writes carry).</summary>
    public static string KeyOf(object record) => record switch
    {
        AppServerRecord s => s.Id,
        ClientRecord c => c.Id,
        NetworkRule n => n.Network.ToString(),
        _ => throw new ArgumentException("not a store record", nameof(record)),
    };

    private static int EncodedLength(object record) => record switch
    {
        AppServerRecord s => Str8Length(s.Id) + Str8Length(s.Service.Address.ToString()) + 2 + 4 + 1 + 1 + 8 + 8 + AttrsLength(s.Attributes),
        ClientRecord c => Str8Length(c.Id) + 8 + AttrsLength(c.Attributes),
        NetworkRule n => Str8Length(n.Network.ToString()) + 8 + AttrsLength(n.Attributes),
        _ => throw new ArgumentException("not a store record", nameof(record)),
    };

    private static int Encode(object record, Span<byte> d)
    {
        // Caps (ids and attributes ≤ 255 bytes, ≤ 255 attributes) are checked when the record enters the store.
        var at = 0;
        switch (record)
        {
            case AppServerRecord s:
                at += WriteStr8(d[at..], s.Id);
                at += WriteStr8(d[at..], s.Service.Address.ToString());
                BinaryPrimitives.WriteUInt16LittleEndian(d[at..], (ushort)s.Service.Port);
                BinaryPrimitives.WriteInt32LittleEndian(d[(at + 2)..], s.Capacity);
                d[at + 6] = (byte)s.State;
                d[at + 7] = s.AdminDrained ? (byte)1 : (byte)0;
                BinaryPrimitives.WriteInt64LittleEndian(d[(at + 8)..], s.RegisteredAt.ToUnixTimeMilliseconds());
                BinaryPrimitives.WriteInt64LittleEndian(d[(at + 16)..], s.LastSeen.ToUnixTimeMilliseconds());
                at += 24;
                at += WriteAttrs(d[at..], s.Attributes);
                break;
            case ClientRecord c:
                at += WriteStr8(d[at..], c.Id);
                BinaryPrimitives.WriteInt64LittleEndian(d[at..], c.UpdatedAt.ToUnixTimeMilliseconds());
                at += 8;
                at += WriteAttrs(d[at..], c.Attributes);
                break;
            case NetworkRule n:
                at += WriteStr8(d[at..], n.Network.ToString());
                BinaryPrimitives.WriteInt64LittleEndian(d[at..], n.UpdatedAt.ToUnixTimeMilliseconds());
                at += 8;
                at += WriteAttrs(d[at..], n.Attributes);
                break;
            default:
                throw new ArgumentException("not a store record", nameof(record));
        }

        return at;
    }

    private static int Str8Length(string s) => 1 + Encoding.UTF8.GetByteCount(s);

    private static int AttrsLength(IReadOnlyDictionary<string, string> attributes)
    {
        var length = 1;
        foreach (var (k, v) in attributes)
        {
            length += Str8Length(k) + Str8Length(v);
        }

        return length;
    }

    private static int WriteAttrs(Span<byte> d, IReadOnlyDictionary<string, string> attributes)
    {
        d[0] = (byte)attributes.Count;
        var at = 1;
        foreach (var (k, v) in attributes.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            at += WriteStr8(d[at..], k);
            at += WriteStr8(d[at..], v);
        }

        return at;
    }

    private static int WriteStr8(Span<byte> destination, string s)
    {
        var n = Encoding.UTF8.GetBytes(s, destination[1..]);
        destination[0] = checked((byte)n);
        return n + 1;
    }

    /// <summary>Reads the records of one page in order; every field is checked, and a bad one names the page and the offset.</summary>
    internal ref struct RecordReader(ReadOnlySpan<byte> bytes, string collection, int page, StringPool pool)
    {
        private readonly ReadOnlySpan<byte> _bytes = bytes;
        private int _at;

        public readonly bool AtEnd => _at >= _bytes.Length;

        public AppServerRecord Server()
        {
            var start = _at;
            var id = Id();
            var address = IPAddress.TryParse(Take(Take(1)[0]), out var a) ? a : throw Bad(start, "addr");
            var fixedPart = Take(24);
            var port = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart);
            var capacity = BinaryPrimitives.ReadInt32LittleEndian(fixedPart[2..]);
            var state = fixedPart[6];
            var drained = fixedPart[7];
            if (capacity < 0 || state > 1 || drained > 1)
            {
                throw Bad(start, capacity < 0 ? "cap" : state > 1 ? "state" : "drained");
            }

            return new AppServerRecord(
                id,
                new IPEndPoint(address, port),
                Attrs(start),
                capacity,
                (ServerState)state,
                drained == 1,
                Time(BinaryPrimitives.ReadInt64LittleEndian(fixedPart[8..]), start, "reg"),
                Time(BinaryPrimitives.ReadInt64LittleEndian(fixedPart[16..]), start, "seen"));
        }

        public ClientRecord Client()
        {
            var start = _at;
            var id = Id();
            var updated = Time(BinaryPrimitives.ReadInt64LittleEndian(Take(8)), start, "upd");
            return new ClientRecord(id, Attrs(start), updated);
        }

        public NetworkRule Network(out string key)
        {
            var start = _at;
            key = Str8();
            var network = IPNetwork.TryParse(key, out var n) ? n : throw Bad(start, "cidr");
            var updated = Time(BinaryPrimitives.ReadInt64LittleEndian(Take(8)), start, "upd");
            return new NetworkRule(network, Attrs(start), updated);
        }

        public readonly InvalidDataException Duplicate(string key) =>
            new($"{collection} page {page} repeats the key '{key}' (offset {_at})");

        private string Id()
        {
            var start = _at;
            var id = Str8();
            return id.Length > 0 ? id : throw Bad(start, "id");
        }

        private IReadOnlyDictionary<string, string> Attrs(int start)
        {
            int count = Take(1)[0];
            if (count == 0)
            {
                return Attributes.Empty;
            }

            var pairs = new Dictionary<string, string>(count, StringComparer.Ordinal);
            for (var i = 0; i < count; i++)
            {
                var k = pool.Get(Take(Take(1)[0]));
                var v = pool.Get(Take(Take(1)[0]));
                if (k.Length == 0 || !pairs.TryAdd(k, v))
                {
                    throw Bad(start, "attrs");
                }
            }

            return pairs.AsReadOnly();
        }

        private string Str8()
        {
            int n = Take(1)[0];
            return Encoding.UTF8.GetString(Take(n));
        }

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n > _bytes.Length - _at)
            {
                throw new InvalidDataException($"{collection} page {page} is cut short at offset {_at}");
            }

            var span = _bytes.Slice(_at, n);
            _at += n;
            return span;
        }

        private readonly DateTimeOffset Time(long unixMs, int start, string field) =>
            unixMs is >= -62_135_596_800_000 and <= 253_402_300_799_999 ? DateTimeOffset.FromUnixTimeMilliseconds(unixMs) : throw Bad(start, field);

        private readonly InvalidDataException Bad(int start, string field) =>
            new($"{collection} page {page}: the record at offset {start} has a missing or invalid '{field}'");
    }

    /// <summary>
    /// One string per distinct attribute key or value while a store loads: 10 000 servers with <c>region=eu</c> share
    /// two strings instead of holding 20 000 (less to allocate, to copy in the next collections, and to keep).
    /// </summary>
    internal sealed class StringPool
    {
        private const int MaxStrings = 65_536; // beyond that, values are mostly distinct: stop pooling
        private readonly Dictionary<string, string> _strings = new(StringComparer.Ordinal);
        private readonly Dictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> _lookup;

        public StringPool() => _lookup = _strings.GetAlternateLookup<ReadOnlySpan<char>>();

        public string Get(ReadOnlySpan<byte> utf8)
        {
            Span<char> chars = stackalloc char[256]; // ≤ 255 bytes of UTF-8 are ≤ 255 UTF-16 chars
            var n = Encoding.UTF8.GetChars(utf8, chars);
            if (_lookup.TryGetValue(chars[..n], out var s))
            {
                return s;
            }

            s = new string(chars[..n]);
            if (_strings.Count < MaxStrings)
            {
                _strings.Add(s, s);
            }

            return s;
        }
    }

    /// <summary>Schema 2, one document per record: read once, to migrate it.</summary>
    private static class V2
    {
        private static readonly string[] Collections = ["servers", "clients", "networks"];

        /// <summary>
        /// Rewrites a schema-2 store as pages in one transaction (a crash leaves either the old store or the new one),
        /// then drops the old collections.
        /// </summary>
        public static void Migrate(LiteDatabase db)
        {
            var servers = db.GetCollection(Collections[0]).FindAll().Select(ToServer).ToList();
            var clients = db.GetCollection(Collections[1]).FindAll().Select(ToClient).ToList();
            var networks = db.GetCollection(Collections[2]).FindAll().Select(ToNetwork).ToList();
            if (!db.BeginTrans())
            {
                throw new InvalidOperationException("a LiteDB transaction is already open on this thread");
            }

            try
            {
                WritePages(db, StoreCollection.Servers, servers);
                WritePages(db, StoreCollection.Clients, clients);
                WritePages(db, StoreCollection.Networks, networks);
                db.GetCollection("meta").Upsert(new BsonDocument { ["_id"] = "schema", ["v"] = SchemaVersion });
                db.Commit();
            }
            catch
            {
                db.Rollback();
                throw;
            }

            db.Checkpoint();
            DropLeftovers(db);
        }

        public static void DropLeftovers(LiteDatabase db)
        {
            var dropped = false;
            foreach (var name in Collections)
            {
                if (db.CollectionExists(name))
                {
                    db.DropCollection(name);
                    dropped = true;
                }
            }

            if (dropped)
            {
                db.Checkpoint();
            }
        }

        private static void WritePages(LiteDatabase db, StoreCollection c, IReadOnlyList<object> records)
        {
            var col = db.GetCollection(CollectionName(c));
            for (var page = 0; page * MaxRecordsPerPage < records.Count; page++)
            {
                var slice = records.Skip(page * MaxRecordsPerPage).Take(MaxRecordsPerPage).ToList();
                col.Insert(PageDocument(page, slice));
            }
        }

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

        // attrs := count:u8 (key:str8 value:str8){count}, the same encoding as the pages'.
        private static IReadOnlyDictionary<string, string> FromBson(BsonDocument d)
        {
            if (!d.TryGetValue("attrs", out var value) || !value.IsBinary || value.AsBinary.Length == 0)
            {
                throw Bad(d, "attrs");
            }

            var bytes = value.AsBinary;
            int count = bytes[0];
            var pairs = new Dictionary<string, string>(count, StringComparer.Ordinal);
            var at = 1;
            for (var i = 0; i < count; i++)
            {
                if (!TryReadStr8(bytes, ref at, out var k) || !TryReadStr8(bytes, ref at, out var v) || k.Length == 0 || !pairs.TryAdd(k, v))
                {
                    throw Bad(d, "attrs");
                }
            }

            return at != bytes.Length ? throw Bad(d, "attrs") : count == 0 ? Attributes.Empty : pairs.AsReadOnly();
        }

        private static bool TryReadStr8(byte[] bytes, ref int at, out string value)
        {
            value = "";
            if (at >= bytes.Length || at + 1 + bytes[at] > bytes.Length)
            {
                return false;
            }

            int n = bytes[at];
            value = Encoding.UTF8.GetString(bytes, at + 1, n);
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
}

/// <summary>The writer's map of which page holds which record, per collection; kept equal to the file.</summary>
internal sealed class StorePages
{
    private readonly PageBook[] _books = [new(), new(), new()];

    public PageBook this[StoreCollection c] => _books[(int)c];
}

/// <summary>
/// The pages of one collection: which page holds each key, and each page's records. A new key goes to the
/// lowest-numbered page with room (or a new page); a page left empty is deleted.
/// </summary>
internal sealed class PageBook
{
    private readonly Dictionary<string, int> _pageOf = new(StringComparer.Ordinal);
    private readonly Dictionary<int, Dictionary<string, object>> _pages = [];
    private readonly SortedSet<int> _withRoom = [];
    private int _next;

    public int Count => _pageOf.Count;

    /// <summary>Files a record read from <paramref name="page"/> (at open). A key seen twice is a corrupt store.</summary>
    public void Load(int page, string key, object record, StoreDocuments.RecordReader reader)
    {
        if (!_pageOf.TryAdd(key, page))
        {
            throw reader.Duplicate(key);
        }

        if (!_pages.TryGetValue(page, out var records))
        {
            _pages[page] = records = new Dictionary<string, object>(StoreDocuments.MaxRecordsPerPage, StringComparer.Ordinal);
            _next = Math.Max(_next, page + 1);
        }

        records[key] = record;
        if (records.Count is 1 or >= StoreDocuments.MaxRecordsPerPage)
        {
            Room(page, records.Count); // only when the page appears or fills: not a sorted-set operation per record
        }
    }

    /// <summary>Adds or replaces a record.</summary>
    /// <returns>The page to rewrite.</returns>
    public int Set(string key, object record)
    {
        if (_pageOf.TryGetValue(key, out var page))
        {
            _pages[page][key] = record;
            return page;
        }

        page = _withRoom.Count > 0 ? _withRoom.Min : _next++;
        if (!_pages.TryGetValue(page, out var records))
        {
            _pages[page] = records = new Dictionary<string, object>(StringComparer.Ordinal);
        }

        records[key] = record;
        _pageOf[key] = page;
        Room(page, records.Count);
        return page;
    }

    /// <summary>Removes a record.</summary>
    /// <returns>The page to rewrite (or delete, when <see cref="RecordsOf"/> gives null); -1 when there was no such key.</returns>
    public int Remove(string key)
    {
        if (!_pageOf.Remove(key, out var page))
        {
            return -1;
        }

        var records = _pages[page];
        records.Remove(key);
        if (records.Count == 0)
        {
            _pages.Remove(page);
            _withRoom.Remove(page);
        }
        else
        {
            Room(page, records.Count);
        }

        return page;
    }

    /// <summary>The records of a page, or null when the page is empty (and its document should go).</summary>
    public IReadOnlyCollection<object>? RecordsOf(int page) => _pages.TryGetValue(page, out var records) ? records.Values : null;

    private void Room(int page, int count)
    {
        if (count < StoreDocuments.MaxRecordsPerPage)
        {
            _withRoom.Add(page);
        }
        else
        {
            _withRoom.Remove(page);
        }
    }
}
