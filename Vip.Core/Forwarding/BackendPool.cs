namespace Vip.Forwarding;

/// <summary>
/// The backends of one listener kind (TCP or UDP) in smooth weighted round-robin order: each call to
/// <see cref="Select"/> returns the next healthy backend after the one returned last.
/// </summary>
internal sealed class BackendPool
{
    private readonly object _gate = new();
    private Backend[] _backends = [];
    private int[] _schedule = [];
    private int _position;

    /// <summary>The current backends (a snapshot; replaced on reload).</summary>
    public IReadOnlyList<Backend> Backends => Volatile.Read(ref _backends);

    /// <summary>
    /// Replaces the backend list. A backend whose address and endpoint stay keeps its object (and so its health and
    /// its live connections); removed ones are flagged <see cref="Backend.Removed"/>.
    /// </summary>
    public (int Added, int Removed) Update(IReadOnlyList<Backend> configured)
    {
        lock (_gate)
        {
            var old = _backends;
            var next = new Backend[configured.Count];
            var added = 0;
            for (var i = 0; i < configured.Count; i++)
            {
                var c = configured[i];
                var existing = Array.Find(old, b => b.Address == c.Address && b.EndPoint.Equals(c.EndPoint) && Array.IndexOf(next, b) < 0);
                if (existing is null)
                {
                    next[i] = c;
                    added++;
                }
                else
                {
                    existing.Weight = c.Weight;
                    existing.ProxyProtocol = c.ProxyProtocol;
                    next[i] = existing;
                }
            }

            var removed = 0;
            foreach (var b in old)
            {
                if (Array.IndexOf(next, b) < 0)
                {
                    b.Removed = true;
                    removed++;
                }
            }

            _schedule = BuildSchedule(next);
            _position = _schedule.Length == 0 ? 0 : _position % _schedule.Length;
            Volatile.Write(ref _backends, next);
            return (added, removed);
        }
    }

    /// <summary>
    /// The next backend in round-robin order that is up and not in <paramref name="exclude"/>; when every such
    /// backend is down, the next one not excluded (marks may be stale, a connect settles it); null when none is left.
    /// </summary>
    public Backend? Select(List<Backend>? exclude = null)
    {
        lock (_gate)
        {
            var schedule = _schedule;
            var backends = _backends;
            var n = schedule.Length;
            for (var pass = 0; pass < 2; pass++)
            {
                for (var i = 0; i < n; i++)
                {
                    var idx = _position + i;
                    if (idx >= n)
                    {
                        idx -= n;
                    }

                    var b = backends[schedule[idx]];
                    if ((pass == 1 || b.IsUp) && (exclude is null || !exclude.Contains(b)))
                    {
                        _position = idx + 1 == n ? 0 : idx + 1;
                        return b;
                    }
                }
            }

            return null;
        }
    }

    // Smooth weighted round robin (as in nginx): weights 5,1,1 give a,a,b,a,c,a,a rather than a,a,a,a,a,b,c.
    internal static int[] BuildSchedule(Backend[] backends)
    {
        var total = 0;
        foreach (var b in backends)
        {
            total += b.Weight;
        }

        var schedule = new int[total];
        var current = new int[backends.Length];
        for (var s = 0; s < total; s++)
        {
            var best = -1;
            for (var i = 0; i < backends.Length; i++)
            {
                current[i] += backends[i].Weight;
                if (best < 0 || current[i] > current[best])
                {
                    best = i;
                }
            }

            current[best] -= total;
            schedule[s] = best;
        }

        return schedule;
    }
}
