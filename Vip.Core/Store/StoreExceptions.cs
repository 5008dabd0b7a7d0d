namespace Vip.Store;

/// <summary>Base of the store's exceptions.</summary>
public abstract class VipStoreException : Exception
{
    /// <summary>Creates the exception.</summary>
    protected VipStoreException(string message, Exception? inner)
        : base(message, inner)
    {
    }
}

/// <summary>
/// The store could not be opened: missing directory, file in use by another process, unreadable or corrupt file,
/// or a LiteDB file that is not a Vip store. The message is one line naming the path; a daemon shows it as its
/// start-up error.
/// </summary>
public sealed class StoreOpenException : VipStoreException
{
    /// <summary>Creates the exception for <paramref name="path"/>.</summary>
    public StoreOpenException(string path, string problem, Exception? inner = null)
        : base($"cannot open store '{path}': {problem}", inner)
    {
        Path = path;
    }

    /// <summary>The database file.</summary>
    public string Path { get; }
}

/// <summary>A write would take the store past one of its caps (<see cref="StoreOptions.MaxServers"/> and the like); nothing was changed.</summary>
public sealed class StoreLimitException : VipStoreException
{
    /// <summary>Creates the exception.</summary>
    public StoreLimitException(string message)
        : base(message, null)
    {
    }
}

/// <summary>An accepted write was not saved because the store shut down while the disk kept failing; the change was lost.</summary>
public sealed class StoreWriteException : VipStoreException
{
    /// <summary>Creates the exception.</summary>
    public StoreWriteException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}
