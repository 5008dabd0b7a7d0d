using System.Collections.Concurrent;

namespace Vip.Daemons.Hosting;

/// <summary>Where a role's components report whether they are healthy; the systemd watchdog reads it.</summary>
/// <remarks>
/// Two ways to report, pick the one that fits the component:
/// <list type="bullet">
/// <item><see cref="Report"/> pushes a state when it changes (a listener that lost its socket, a store whose
/// writer keeps failing). A component stays in the state it last reported.</item>
/// <item><see cref="AddProbe"/> registers a cheap in-memory check that is evaluated at every watchdog tick
/// (for example "the accept loop has not faulted"). Probes must not block or do I/O.</item>
/// </list>
/// While any component is unhealthy the watchdog stops sending <c>WATCHDOG=1</c>, so systemd restarts the
/// service after <c>WatchdogSec</c>. Report only what a restart can cure: a dead backend of the VIP box is not
/// the VIP box's illness, a faulted accept loop is.
/// </remarks>
internal interface IHealthSignal
{
    /// <summary>Records the state of <paramref name="component"/>; <paramref name="reason"/> says why it is unhealthy.</summary>
    void Report(string component, bool healthy, string? reason = null);

    /// <summary>Registers a probe: returns null when healthy, otherwise the reason. Dispose the result to remove it.</summary>
    IDisposable AddProbe(string component, Func<string?> probe);
}

/// <summary>The host's health registry (one per host, a singleton in DI as both this and <see cref="IHealthSignal"/>).</summary>
internal sealed class VipHealth : IHealthSignal
{
    private readonly ConcurrentDictionary<string, string?> _reported = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Func<string?>> _probes = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public void Report(string component, bool healthy, string? reason = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(component);
        _reported[component] = healthy ? null : (string.IsNullOrEmpty(reason) ? "unhealthy" : reason);
    }

    /// <inheritdoc />
    public IDisposable AddProbe(string component, Func<string?> probe)
    {
        ArgumentException.ThrowIfNullOrEmpty(component);
        ArgumentNullException.ThrowIfNull(probe);
        if (!_probes.TryAdd(component, probe))
        {
            throw new InvalidOperationException($"a health probe named '{component}' is already registered");
        }

        return new ProbeRegistration(this, component, probe);
    }

    /// <summary>
    /// Evaluates every component. Returns true when all are healthy; otherwise false and, in
    /// <paramref name="firstProblem"/>, the first unhealthy component and its reason (for logs and STATUS=).
    /// </summary>
    public bool Check(out string? firstProblem)
    {
        foreach (var (component, reason) in _reported)
        {
            if (reason is not null)
            {
                firstProblem = component + ": " + reason;
                return false;
            }
        }

        foreach (var (component, probe) in _probes)
        {
            string? reason;
            try
            {
                reason = probe();
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                reason = "probe threw " + ex.GetType().Name + ": " + ex.Message;
            }

            if (reason is not null)
            {
                firstProblem = component + ": " + reason;
                return false;
            }
        }

        firstProblem = null;
        return true;
    }

    private sealed class ProbeRegistration(VipHealth owner, string component, Func<string?> probe) : IDisposable
    {
        public void Dispose() => owner._probes.TryRemove(new KeyValuePair<string, Func<string?>>(component, probe));
    }
}
