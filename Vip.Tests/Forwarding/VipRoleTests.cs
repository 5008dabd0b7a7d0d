using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Vip.Daemons.Hosting;
using Vip.Daemons.Roles;
using Vip.Forwarding;

namespace Vip.Tests.Forwarding;

public class VipRoleTests
{
    [Test]
    public void Switches_become_forwarder_options()
    {
        using var host = new VipRole().Build(
        [
            "--listen", "127.0.0.1:0", "--backends", "127.0.0.1:7001, 127.0.0.1:7002", "--proxy-protocol",
            "--max-per-source", "5", "--health", "Ping", "--Vip:MaxReadSize", "131072", "--inline-completions", "false",
            "--transport", "Sockets",
        ]);
        var o = host.Services.GetRequiredService<IOptions<ForwarderOptions>>().Value;
        Assert.That(o.Listen, Is.EqualTo("127.0.0.1:0"));
        Assert.That(o.Backends.Select(b => b.Address), Is.EqualTo(new[] { "127.0.0.1:7001", "127.0.0.1:7002" }));
        Assert.That(o.ProxyProtocol, Is.True);
        Assert.That(o.MaxConnectionsPerSource, Is.EqualTo(5));
        Assert.That(o.HealthCheck.Mode, Is.EqualTo(HealthCheckMode.Ping));
        Assert.That(o.MaxReadSize, Is.EqualTo(131072));
        Assert.That(o.Transport, Is.EqualTo(RelayTransport.Sockets));
        Assert.That(o.MaxConnections, Is.EqualTo(4096), "defaults stay");
    }

    [Test]
    public void Backends_may_be_a_string_a_list_of_strings_or_a_list_of_objects()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Flat"] = "a:1,b:2",
            ["Strings:0"] = "c:3",
            ["Strings:1"] = "d:4",
            ["Objects:0:Address"] = "e:5",
            ["Objects:0:Weight"] = "3",
            ["Objects:0:ProxyProtocol"] = "true",
            ["Objects:1:Address"] = "f:6",
        }).Build();

        var flat = new List<BackendOptions>();
        VipRole.ReadBackends(config.GetSection("Flat"), flat);
        Assert.That(flat.Select(b => b.Address), Is.EqualTo(new[] { "a:1", "b:2" }));

        var strings = new List<BackendOptions>();
        VipRole.ReadBackends(config.GetSection("Strings"), strings);
        Assert.That(strings.Select(b => b.Address), Is.EqualTo(new[] { "c:3", "d:4" }));

        var objects = new List<BackendOptions>();
        VipRole.ReadBackends(config.GetSection("Objects"), objects);
        Assert.That(objects.Select(b => (b.Address, b.Weight, b.ProxyProtocol)),
            Is.EqualTo(new[] { ("e:5", 3, (bool?)true), ("f:6", 1, (bool?)null) }));
    }

    [Test]
    public async Task The_role_host_forwards_and_stops()
    {
        await using var backend = TestServer.Named("backend");
        using var host = new VipRole().Build(["--listen", "127.0.0.1:0", "--backends", backend.Address, "--inline-completions", "false"]);
        await host.StartAsync();
        var vip = host.Services.GetRequiredService<VipForwarder>();
        using (var s = await Net.ConnectAsync(vip.TcpEndPoints[0]))
        {
            Assert.That(await Net.ReadLineAsync(s), Is.EqualTo("backend"));
        }

        await host.StopAsync();
    }

    [Test]
    public async Task A_taken_port_is_a_one_line_start_up_failure()
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        var error = new StringWriter();
        var saved = Console.Error;
        Console.SetError(error);
        int code;
        try
        {
            code = await Vipd.RunAsync(["vip", "--listen", taken.LocalEndPoint!.ToString()!, "--backends", "127.0.0.1:9", "--inline-completions", "false"]);
        }
        finally
        {
            Console.SetError(saved);
        }

        Assert.That(code, Is.EqualTo(ExitCodes.Config));
        Assert.That(error.ToString().TrimEnd(), Does.StartWith("vipd vip: cannot listen:").And.Not.Contains("\n"));
    }

    [Test]
    public async Task Missing_backends_are_a_one_line_start_up_failure()
    {
        var error = new StringWriter();
        var saved = Console.Error;
        Console.SetError(error);
        int code;
        try
        {
            code = await Vipd.RunAsync(["vip", "--listen", "127.0.0.1:0", "--inline-completions", "false"]);
        }
        finally
        {
            Console.SetError(saved);
        }

        Assert.That(code, Is.EqualTo(ExitCodes.Config));
        Assert.That(error.ToString(), Does.Contain("Vip:Backends needs at least one HOST:PORT"));
    }
}
