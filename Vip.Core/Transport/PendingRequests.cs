using System.Collections.Concurrent;

namespace Vip.Transport;

/// <summary>
/// Matches answers to requests by request id on a multiplexed link: <see cref="Register"/> hands out an id and a
/// task; <see cref="TryComplete"/> finishes it when the answer arrives; <see cref="FailAll"/> when the link dies.
/// </summary>
public sealed class PendingRequests<T>
{
    private readonly ConcurrentDictionary<ulong, TaskCompletionSource<T>> _pending = new();
    private long _nextId;

    /// <summary>Requests waiting for an answer.</summary>
    public int Count => _pending.Count;

    /// <summary>Allocates a fresh request id and the task that its answer completes.</summary>
    public (ulong Id, Task<T> Answer) Register()
    {
        var id = (ulong)Interlocked.Increment(ref _nextId);
        var tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = tcs;
        return (id, tcs.Task);
    }

    /// <summary>Completes the request <paramref name="id"/>; false when it is unknown (late, or never sent).</summary>
    public bool TryComplete(ulong id, T answer) => _pending.TryRemove(id, out var tcs) && tcs.TrySetResult(answer);

    /// <summary>Fails the request <paramref name="id"/>, if still pending.</summary>
    public bool TryFail(ulong id, Exception error) => _pending.TryRemove(id, out var tcs) && tcs.TrySetException(error);

    /// <summary>Forgets the request <paramref name="id"/> (after a timeout) so a late answer is ignored.</summary>
    public void Forget(ulong id) => _pending.TryRemove(id, out _);

    /// <summary>Fails every pending request (the link went down).</summary>
    public void FailAll(Exception error)
    {
        foreach (var id in _pending.Keys)
        {
            TryFail(id, error);
        }
    }
}
