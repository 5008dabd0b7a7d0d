namespace Vip.Tickets;

/// <summary>
/// The ticket keys a daemon knows: one active key that signs new tickets, and every key (active or not) that
/// verifies them, so keys can rotate without refusing tickets issued just before the switch. Immutable.
/// </summary>
public sealed class TicketKeyRing
{
    /// <summary>Most keys one ring (and one key file) may hold.</summary>
    public const int MaxKeys = 64;

    private readonly TicketKey[] _keys;

    /// <summary>Creates a ring from its keys and the id of the active one.</summary>
    /// <exception cref="ArgumentException">No keys, more than <see cref="MaxKeys"/>, duplicate ids, or the active id is not among them.</exception>
    public TicketKeyRing(IEnumerable<TicketKey> keys, uint activeKeyId)
    {
        ArgumentNullException.ThrowIfNull(keys);
        _keys = [.. keys];
        if (_keys.Length == 0)
        {
            throw new ArgumentException("a ticket key ring needs at least one key", nameof(keys));
        }

        if (_keys.Length > MaxKeys)
        {
            throw new ArgumentException($"a ticket key ring holds at most {MaxKeys} keys", nameof(keys));
        }

        var ids = new HashSet<uint>();
        foreach (var k in _keys)
        {
            ArgumentNullException.ThrowIfNull(k, nameof(keys));
            if (!ids.Add(k.Id))
            {
                throw new ArgumentException($"duplicate ticket key id {k.Id}", nameof(keys));
            }
        }

        Active = Array.Find(_keys, k => k.Id == activeKeyId)
            ?? throw new ArgumentException($"the active key id {activeKeyId} is not among the keys", nameof(activeKeyId));
    }

    /// <summary>The key that signs new tickets.</summary>
    public TicketKey Active { get; }

    /// <summary>Every key, in the order given (the key file's order).</summary>
    public IReadOnlyList<TicketKey> Keys => _keys;

    /// <summary>A ring holding one freshly generated key (id 1), active.</summary>
    public static TicketKeyRing CreateNew(TimeProvider? time = null)
    {
        var key = TicketKey.Generate(1, (time ?? TimeProvider.System).GetUtcNow());
        return new TicketKeyRing([key], key.Id);
    }

    /// <summary>Finds the key with id <paramref name="id"/>; a linear scan, as rings hold a handful of keys.</summary>
    public bool TryGetKey(uint id, out TicketKey key)
    {
        foreach (var k in _keys)
        {
            if (k.Id == id)
            {
                key = k;
                return true;
            }
        }

        key = null!;
        return false;
    }

    /// <summary>A new ring with one more freshly generated key (id = highest id + 1), active or not.</summary>
    public TicketKeyRing WithNewKey(bool activate, TimeProvider? time = null)
    {
        var id = _keys.Max(k => k.Id);
        if (id == uint.MaxValue)
        {
            throw new InvalidOperationException("ticket key ids are exhausted");
        }

        var key = TicketKey.Generate(id + 1, (time ?? TimeProvider.System).GetUtcNow());
        return new TicketKeyRing([.. _keys, key], activate ? key.Id : Active.Id);
    }

    /// <summary>A new ring whose active key is <paramref name="id"/>.</summary>
    /// <exception cref="ArgumentException">No key has that id.</exception>
    public TicketKeyRing WithActive(uint id) => new(_keys, id);

    /// <summary>A new ring without key <paramref name="id"/>.</summary>
    /// <exception cref="ArgumentException">No key has that id, or it is the active key.</exception>
    public TicketKeyRing Without(uint id)
    {
        if (!TryGetKey(id, out _))
        {
            throw new ArgumentException($"there is no ticket key {id}", nameof(id));
        }

        if (id == Active.Id)
        {
            throw new ArgumentException($"ticket key {id} is the active key; activate another key first", nameof(id));
        }

        return new TicketKeyRing(_keys.Where(k => k.Id != id), Active.Id);
    }
}
