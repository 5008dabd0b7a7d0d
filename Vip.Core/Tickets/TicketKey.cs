using System.Security.Cryptography;

namespace Vip.Tickets;

/// <summary>One HMAC-SHA256 secret with the id that tickets signed with it carry.</summary>
public sealed class TicketKey
{
    /// <summary>Length of a generated secret in bytes (256 bits).</summary>
    public const int GeneratedSecretLength = 32;

    /// <summary>Shortest secret accepted, in bytes.</summary>
    public const int MinSecretLength = 32;

    /// <summary>Longest secret accepted, in bytes (one HMAC-SHA256 block).</summary>
    public const int MaxSecretLength = 64;

    private readonly byte[] _secret;

    /// <summary>Creates a key from an id and a secret (copied).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is 0 or the secret is not 32..64 bytes long.</exception>
    public TicketKey(uint id, ReadOnlySpan<byte> secret, DateTimeOffset created)
    {
        ArgumentOutOfRangeException.ThrowIfZero(id);
        if (secret.Length is < MinSecretLength or > MaxSecretLength)
        {
            throw new ArgumentOutOfRangeException(nameof(secret), secret.Length, $"a ticket key secret is {MinSecretLength}..{MaxSecretLength} bytes long");
        }

        Id = id;
        _secret = secret.ToArray();
        Created = created;
        Hmac = new ThreadLocalHmac(_secret);
    }

    /// <summary>The key id (1..2^32-1) written into every ticket signed with this key.</summary>
    public uint Id { get; }

    /// <summary>When the key was generated (informational; kept in the key file).</summary>
    public DateTimeOffset Created { get; }

    /// <summary>The secret. Never log it.</summary>
    public ReadOnlySpan<byte> Secret => _secret;

    /// <summary>HMAC-SHA256 keyed with the secret, one reusable context per thread.</summary>
    internal ThreadLocalHmac Hmac { get; }

    /// <summary>Generates a key with a fresh 256-bit secret from the operating system's CSPRNG.</summary>
    public static TicketKey Generate(uint id, DateTimeOffset created)
    {
        Span<byte> secret = stackalloc byte[GeneratedSecretLength];
        RandomNumberGenerator.Fill(secret);
        try
        {
            return new TicketKey(id, secret, created);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"ticket key {Id}";
}
