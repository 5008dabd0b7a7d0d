using System.Net;
using Microsoft.Extensions.Time.Testing;
using Vip.Selection;

namespace Vip.Tests.Selection;

/// <summary>An engine on a fake clock with seeded randomness, and short ways to add servers and place tasks.</summary>
internal sealed class SelectionFixture : IDisposable
{
    public SelectionFixture(Action<SelectionOptions>? configure = null, int seed = 1)
    {
        Options = new SelectionOptions { PublishDelay = TimeSpan.Zero };
        configure?.Invoke(Options);
        Time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        Engine = new SelectionEngine(Options, Time, new Random(seed));
    }

    public SelectionOptions Options { get; }

    public FakeTimeProvider Time { get; }

    public SelectionEngine Engine { get; }

    private int _port = 9000;

    /// <summary>Adds an up server: attributes as "key=value" strings.</summary>
    public ServerEntry Add(string id, int capacity = 100, params string[] attributes) =>
        Engine.Register(new ServerRegistration(id, new IPEndPoint(IPAddress.Loopback, _port++), capacity, Attrs(attributes)));

    public static Dictionary<string, string> Attrs(params string[] pairs) =>
        pairs.Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);

    public void Client(string id, params string[] attributes) => Engine.SetClient(new ClientRecord(id, Attrs(attributes)));

    public void Beat(string id, int active = 0, bool draining = false) =>
        Assert.That(Engine.Heartbeat(id, new ServerHeartbeat(0, active, draining)), Is.True, $"heartbeat of {id}");

    public SelectionResult Pick(string requirement = "", string client = "c1", string address = "10.0.0.1", string kind = "echo", params string[] taskAttributes) =>
        Engine.Select(SelectionRequest.Create(client, IPAddress.Parse(address), kind, Attrs(taskAttributes), requirement));

    public SelectionExplanation Explain(string requirement = "", string client = "c1", string address = "10.0.0.1", string kind = "echo", params string[] taskAttributes) =>
        Engine.Explain(SelectionRequest.Create(client, IPAddress.Parse(address), kind, Attrs(taskAttributes), requirement));

    /// <summary>The ids explain keeps as candidates, sorted.</summary>
    public string[] Kept(string requirement = "", string client = "c1", string address = "10.0.0.1", string kind = "echo", params string[] taskAttributes) =>
        [.. Explain(requirement, client, address, kind, taskAttributes).Servers.Where(v => v.Kept).Select(v => v.Server.Id).Order(StringComparer.Ordinal)];

    /// <summary>The ids chosen over many picks (each pick counts a ticket, so capacity must allow it).</summary>
    public string[] Chosen(int picks, string requirement = "", string client = "c1", string address = "10.0.0.1", string kind = "echo", params string[] taskAttributes)
    {
        var ids = new SortedSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < picks; i++)
        {
            SelectionResult r = Pick(requirement, client, address, kind, taskAttributes);
            Assert.That(r.Outcome, Is.EqualTo(SelectionOutcome.Selected), r.Message);
            ids.Add(r.Server!.Id);
        }

        return [.. ids];
    }

    public void Dispose() => Engine.Dispose();
}
