using System.Net;
using System.Text;
using Vip.Protocol;

namespace Vip.Selection;

/// <summary>
/// One task to place, as UTF-8 slices of the FORWARD payload, so a decision copies nothing.
/// </summary>
/// <remarks>
/// The task attributes are the wire <c>attrs</c> field as it stands in the frame (a <c>u8</c> count, then that many
/// (<c>key:str8</c>, <c>value:str8</c>) pairs), or the codec's <see cref="AttributeList"/>.
/// <see cref="ClientAddress"/> is the client's address in network order: 4 bytes (IPv4), 16 bytes (IPv6;
/// IPv4-mapped addresses count as IPv4) or empty when unknown. Build one from strings with
/// <see cref="Create(string, IPAddress?, string, IEnumerable{KeyValuePair{string, string}}?, string?)"/>.
/// </remarks>
public readonly ref struct SelectionRequest
{
    /// <summary>Creates a request over UTF-8 slices.</summary>
    /// <param name="clientId">The TASK's <c>clientId</c> (UTF-8).</param>
    /// <param name="clientAddress">The client's address bytes (0, 4 or 16).</param>
    /// <param name="kind">The TASK's <c>kind</c> (UTF-8).</param>
    /// <param name="attributes">The TASK's <c>attrs</c> field as on the wire, count byte first (empty: none).</param>
    /// <param name="requirement">The TASK's requirement expression (UTF-8), possibly empty.</param>
    public SelectionRequest(ReadOnlySpan<byte> clientId, ReadOnlySpan<byte> clientAddress, ReadOnlySpan<byte> kind, ReadOnlySpan<byte> attributes, ReadOnlySpan<byte> requirement)
    {
        ClientId = clientId;
        ClientAddress = clientAddress;
        Kind = kind;
        AttributeCount = attributes.IsEmpty ? 0 : attributes[0];
        AttributePairs = attributes.IsEmpty ? default : attributes[1..];
        Requirement = requirement;
    }

    /// <summary>Creates a request from the protocol codec's views (the attributes as <see cref="AttributeList"/>).</summary>
    /// <param name="clientId">The TASK's <c>clientId</c> (UTF-8).</param>
    /// <param name="clientAddress">The client's address bytes (0, 4 or 16).</param>
    /// <param name="kind">The TASK's <c>kind</c> (UTF-8).</param>
    /// <param name="attributes">The TASK's validated attributes.</param>
    /// <param name="requirement">The TASK's requirement expression (UTF-8), possibly empty.</param>
    public SelectionRequest(ReadOnlySpan<byte> clientId, ReadOnlySpan<byte> clientAddress, ReadOnlySpan<byte> kind, AttributeList attributes, ReadOnlySpan<byte> requirement)
    {
        ClientId = clientId;
        ClientAddress = clientAddress;
        Kind = kind;
        AttributeCount = attributes.Count;
        AttributePairs = attributes.Raw;
        Requirement = requirement;
    }

    /// <summary>Creates the request for a FORWARD frame, writing the client address into <paramref name="addressBuffer"/>.</summary>
    /// <param name="forward">The FORWARD payload view.</param>
    /// <param name="addressBuffer">At least 16 bytes that outlive the request (e.g. <c>stackalloc byte[16]</c>).</param>
    /// <returns>The request.</returns>
    public static SelectionRequest FromForward(ForwardView forward, Span<byte> addressBuffer)
    {
        int n = forward.Client.WriteAddress(addressBuffer);
        TaskView task = forward.Task;
        return new SelectionRequest(task.ClientId, addressBuffer[..n], task.Kind, task.Attributes, task.Requirement);
    }

    /// <summary>The client id (UTF-8).</summary>
    public ReadOnlySpan<byte> ClientId { get; }

    /// <summary>The client address in network order (0, 4 or 16 bytes).</summary>
    public ReadOnlySpan<byte> ClientAddress { get; }

    /// <summary>The task kind (UTF-8).</summary>
    public ReadOnlySpan<byte> Kind { get; }

    /// <summary>Number of task attributes.</summary>
    public int AttributeCount { get; }

    /// <summary>The task attributes' (<c>key:str8</c>, <c>value:str8</c>) pairs as on the wire, without the count byte.</summary>
    public ReadOnlySpan<byte> AttributePairs { get; }

    /// <summary>The requirement expression (UTF-8).</summary>
    public ReadOnlySpan<byte> Requirement { get; }

    /// <summary>Builds a request from strings (allocates; for tools, tests and <c>vipd ctl explain</c>).</summary>
    /// <param name="clientId">Client id.</param>
    /// <param name="clientAddress">Client address, or null when unknown.</param>
    /// <param name="kind">Task kind.</param>
    /// <param name="attributes">Task attributes, or null.</param>
    /// <param name="requirement">Requirement expression, or null.</param>
    /// <returns>The request.</returns>
    public static SelectionRequest Create(string clientId, IPAddress? clientAddress, string kind, IEnumerable<KeyValuePair<string, string>>? attributes = null, string? requirement = null)
    {
        ArgumentNullException.ThrowIfNull(clientId);
        ArgumentNullException.ThrowIfNull(kind);
        byte[] address = clientAddress?.GetAddressBytes() ?? [];
        return new SelectionRequest(
            Encoding.UTF8.GetBytes(clientId),
            address,
            Encoding.UTF8.GetBytes(kind),
            attributes is null ? [] : EncodeAttributes(attributes),
            Encoding.UTF8.GetBytes(requirement ?? string.Empty));
    }

    /// <summary>Encodes attributes in the wire <c>attrs</c> format (count, then key/value <c>str8</c> pairs).</summary>
    /// <param name="attributes">At most 255 pairs; keys and values at most 255 bytes of UTF-8.</param>
    /// <returns>The encoded bytes.</returns>
    public static byte[] EncodeAttributes(IEnumerable<KeyValuePair<string, string>> attributes)
    {
        ArgumentNullException.ThrowIfNull(attributes);
        var list = attributes.ToList();
        if (list.Count > 255)
        {
            throw new ArgumentException("at most 255 attributes", nameof(attributes));
        }

        var bytes = new List<byte> { (byte)list.Count };
        foreach ((string k, string v) in list)
        {
            foreach (string s in (ReadOnlySpan<string>)[k, v])
            {
                byte[] b = Encoding.UTF8.GetBytes(s);
                if (b.Length > 255)
                {
                    throw new ArgumentException("attribute keys and values are at most 255 bytes", nameof(attributes));
                }

                bytes.Add((byte)b.Length);
                bytes.AddRange(b);
            }
        }

        return [.. bytes];
    }
}

/// <summary>Reads the wire <c>attrs</c> encoding without allocating.</summary>
internal ref struct AttributeReader
{
    private ReadOnlySpan<byte> _rest;
    private int _left;

    public AttributeReader(ReadOnlySpan<byte> pairs, int count)
    {
        _rest = pairs;
        _left = count;
        Malformed = false;
    }

    public bool Malformed { get; private set; }

    public bool Next(out ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value)
    {
        key = value = default;
        if (_left == 0)
        {
            if (!_rest.IsEmpty)
            {
                Malformed = true;
            }

            return false;
        }

        _left--;
        if (!Take(out key) || !Take(out value))
        {
            Malformed = true;
            _left = 0;
            return false;
        }

        return true;
    }

    private bool Take(out ReadOnlySpan<byte> s)
    {
        if (_rest.IsEmpty || _rest.Length < 1 + _rest[0])
        {
            s = default;
            return false;
        }

        s = _rest.Slice(1, _rest[0]);
        _rest = _rest[(1 + _rest[0])..];
        return true;
    }
}
