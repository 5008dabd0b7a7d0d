using System.Text.Json;
using Vip.Daemons.Roles;

namespace Vip.Tests.EndToEnd;

public class DemoRoleTests
{
    [Test]
    public async Task The_demo_runs_every_kind_and_prints_a_json_summary()
    {
        var output = new StringWriter();

        var code = await new DemoRole(output).RunAsync(["--tasks", "40", "--json"]);

        Assert.That(code, Is.Zero, output.ToString());
        using var doc = JsonDocument.Parse(output.ToString());
        var root = doc.RootElement;
        Assert.That(root.GetProperty("ran").GetInt32() + root.GetProperty("rejected").GetInt32(), Is.EqualTo(40));
        Assert.That(root.GetProperty("wrongResults").GetInt32(), Is.Zero);
        var kinds = root.GetProperty("servers").EnumerateArray().SelectMany(s => s.GetProperty("kinds").EnumerateObject().Select(k => k.Name)).Distinct();
        Assert.That(kinds, Is.EquivalentTo(new[] { "sha256", "primes", "sleep", "echo" }));
    }
}
