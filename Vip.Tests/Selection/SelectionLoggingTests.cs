using System.Net;
using Microsoft.Extensions.Logging;
using Vip.Selection;

namespace Vip.Tests.Selection;

/// <summary>What the engine logs for registrations.</summary>
public class SelectionLoggingTests
{
    [Test]
    public void Reloading_many_servers_logs_one_line_and_a_live_registration_logs_its_own()
    {
        var log = new RecordingLogger();
        using var engine = new SelectionEngine(new SelectionOptions { PublishDelay = TimeSpan.Zero }, logger: log);

        int loaded = engine.RegisterMany(Enumerable.Range(0, 1000).Select(i =>
            new ServerRegistration($"s{i}", new IPEndPoint(IPAddress.Loopback, 10_000 + i), 10, new Dictionary<string, string>())));

        Assert.That(loaded, Is.EqualTo(1000));
        Assert.That(log.Entries.Where(e => e.Level == LogLevel.Information).Select(e => e.Message), Is.EqualTo(new[] { "Loaded 1000 app servers at once, state Unknown" }));

        engine.Register(new ServerRegistration("live", new IPEndPoint(IPAddress.Loopback, 9000), 10, new Dictionary<string, string>()));
        Assert.That(log.Entries[^1].Message, Does.StartWith("App server live registered at"));
    }

    [Test]
    public void A_refused_server_in_a_reload_is_still_logged()
    {
        var log = new RecordingLogger();
        using var engine = new SelectionEngine(new SelectionOptions { PublishDelay = TimeSpan.Zero, MaxServers = 1 }, logger: log);

        int loaded = engine.RegisterMany([
            new ServerRegistration("a", new IPEndPoint(IPAddress.Loopback, 9000), 10, new Dictionary<string, string>()),
            new ServerRegistration("b", new IPEndPoint(IPAddress.Loopback, 9001), 10, new Dictionary<string, string>())]);

        Assert.That(loaded, Is.EqualTo(1));
        Assert.That(log.Entries.Count(e => e.Level == LogLevel.Warning && e.Message.Contains("Registration of b refused", StringComparison.Ordinal)), Is.EqualTo(1));
        Assert.That(log.Entries.Count(e => e.Level == LogLevel.Information), Is.EqualTo(1));
    }

    private sealed class RecordingLogger : ILogger<SelectionEngine>
    {
        public List<(LogLevel Level, string Message)> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => Entries.Add((logLevel, formatter(state, exception)));
    }
}
