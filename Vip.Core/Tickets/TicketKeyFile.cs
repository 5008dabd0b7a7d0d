using System.Globalization;
using System.Text.Json;
using Vip.Store;

namespace Vip.Tickets;

/// <summary>
/// Reads and writes ticket key files: a small JSON document, created with mode 0600 (owner only), holding the
/// keys of a <see cref="TicketKeyRing"/> and the id of the active one. See <c>docs/protocol.md</c>, "Tickets".
/// </summary>
/// <remarks>
/// <code>
/// {
///   "format": "vip-ticket-keys/1",
///   "active": 2,
///   "keys": [
///     { "id": 1, "created": "2026-01-02T03:04:05+00:00", "secret": "base64 of 32..64 bytes" },
///     { "id": 2, "created": "2026-02-01T00:00:00+00:00", "secret": "..." }
///   ]
/// }
/// </code>
/// </remarks>
public static class TicketKeyFile
{
    /// <summary>The value of the <c>format</c> member.</summary>
    public const string Format = "vip-ticket-keys/1";

    /// <summary>Largest key file read, in bytes; anything longer is refused before it is parsed.</summary>
    public const int MaxFileLength = 64 * 1024;

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode GroupOrOther =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>Reads a key file.</summary>
    /// <param name="path">The key file.</param>
    /// <param name="requireOwnerOnly">On Unix, refuse a file that its group or others may read or write (default true).</param>
    /// <exception cref="TicketKeyFileException">The file is missing, unreadable, too open, too large, or not a valid key file.</exception>
    public static TicketKeyRing Load(string path, bool requireOwnerOnly = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] bytes;
        try
        {
            if (!File.Exists(path))
            {
                throw new TicketKeyFileException(path, "does not exist (create one with 'vipd keygen --out PATH')");
            }

            if (requireOwnerOnly && !OperatingSystem.IsWindows())
            {
                var mode = File.GetUnixFileMode(path);
                if ((mode & GroupOrOther) != 0)
                {
                    throw new TicketKeyFileException(path, $"may be read by its group or others (mode {ModeString(mode)}); run 'chmod 600 {path}'");
                }
            }

            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
            if (stream.Length > MaxFileLength)
            {
                throw new TicketKeyFileException(path, $"is larger than {MaxFileLength} bytes; it is not a ticket key file");
            }

            bytes = new byte[stream.Length];
            stream.ReadExactly(bytes);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new TicketKeyFileException(path, "cannot be read: " + ex.Message, ex);
        }

        try
        {
            return Parse(bytes);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or ArgumentException or InvalidDataException)
        {
            throw new TicketKeyFileException(path, "is not a valid ticket key file: " + ex.Message, ex);
        }
    }

    /// <summary>Writes <paramref name="ring"/> to <paramref name="path"/> with mode 0600, atomically (temporary file, fsync, rename).</summary>
    /// <param name="path">The key file.</param>
    /// <param name="ring">The keys to write.</param>
    /// <param name="overwrite">Replace an existing file; without it an existing file is an error.</param>
    /// <exception cref="TicketKeyFileException">The file exists and <paramref name="overwrite"/> is false, or it cannot be written.</exception>
    public static void Save(string path, TicketKeyRing ring, bool overwrite)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(ring);
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir))
        {
            throw new TicketKeyFileException(path, $"cannot be written: directory '{dir}' does not exist");
        }

        if (!overwrite && File.Exists(full))
        {
            throw new TicketKeyFileException(path, "already exists (use --force to replace it, --add to add a key to it)");
        }

        var temp = Path.Combine(dir, "." + Path.GetFileName(full) + ".tmp-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = OwnerOnly;
            }

            using (var stream = new FileStream(temp, options))
            {
                using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
                {
                    Write(writer, ring);
                }

                stream.Flush(flushToDisk: true);
            }

            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(temp, OwnerOnly); // the umask cannot widen it, but be explicit
            }

            File.Move(temp, full, overwrite);
            DirectorySync.TryFsync(dir);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(temp);
            if (!overwrite && ex is IOException && File.Exists(full))
            {
                throw new TicketKeyFileException(path, "already exists (use --force to replace it)", ex);
            }

            throw new TicketKeyFileException(path, "cannot be written: " + ex.Message, ex);
        }
    }

    internal static TicketKeyRing Parse(ReadOnlySpan<byte> utf8Json)
    {
        using var doc = JsonDocument.Parse(utf8Json.ToArray(), new JsonDocumentOptions { MaxDepth = 8 });
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException("the document is not a JSON object");
        }

        if (!root.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.String || format.GetString() != Format)
        {
            throw new InvalidDataException($"\"format\" must be \"{Format}\"");
        }

        if (!root.TryGetProperty("active", out var active) || !active.TryGetUInt32(out var activeId))
        {
            throw new InvalidDataException("\"active\" must be a key id (a positive integer)");
        }

        if (!root.TryGetProperty("keys", out var keys) || keys.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidDataException("\"keys\" must be an array");
        }

        if (keys.GetArrayLength() > TicketKeyRing.MaxKeys)
        {
            throw new InvalidDataException($"more than {TicketKeyRing.MaxKeys} keys");
        }

        var list = new List<TicketKey>();
        var index = 0;
        foreach (var k in keys.EnumerateArray())
        {
            if (k.ValueKind != JsonValueKind.Object
                || !k.TryGetProperty("id", out var idEl) || !idEl.TryGetUInt32(out var id) || id == 0)
            {
                throw new InvalidDataException($"keys[{index}]: \"id\" must be a positive integer");
            }

            if (!k.TryGetProperty("secret", out var secretEl) || secretEl.ValueKind != JsonValueKind.String)
            {
                throw new InvalidDataException($"key {id}: \"secret\" must be a base64 string");
            }

            var secret = Convert.FromBase64String(secretEl.GetString()!);
            if (secret.Length is < TicketKey.MinSecretLength or > TicketKey.MaxSecretLength)
            {
                throw new InvalidDataException($"key {id}: the secret is {secret.Length} bytes; {TicketKey.MinSecretLength}..{TicketKey.MaxSecretLength} are required");
            }

            var created = DateTimeOffset.UnixEpoch;
            if (k.TryGetProperty("created", out var createdEl) && createdEl.ValueKind == JsonValueKind.String
                && !DateTimeOffset.TryParse(createdEl.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out created))
            {
                throw new InvalidDataException($"key {id}: \"created\" is not a date");
            }

            list.Add(new TicketKey(id, secret, created));
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(secret);
            index++;
        }

        return new TicketKeyRing(list, activeId);
    }

    private static void Write(Utf8JsonWriter w, TicketKeyRing ring)
    {
        w.WriteStartObject();
        w.WriteString("format", Format);
        w.WriteNumber("active", ring.Active.Id);
        w.WriteStartArray("keys");
        foreach (var k in ring.Keys)
        {
            w.WriteStartObject();
            w.WriteNumber("id", k.Id);
            w.WriteString("created", k.Created.ToString("O", CultureInfo.InvariantCulture));
            w.WriteBase64String("secret", k.Secret);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static string ModeString(UnixFileMode mode) => "0" + Convert.ToString((int)mode, 8);

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>A ticket key file could not be read or written; the message names the file and says why, in one line.</summary>
public sealed class TicketKeyFileException : Exception
{
    /// <summary>Creates the exception for <paramref name="path"/>.</summary>
    public TicketKeyFileException(string path, string problem, Exception? inner = null)
        : base($"ticket key file '{path}' {problem}", inner)
    {
        Path = path;
    }

    /// <summary>The key file.</summary>
    public string Path { get; }
}
