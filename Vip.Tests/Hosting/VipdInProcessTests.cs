using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using Vip.Daemons.Hosting;

namespace Vip.Tests.Hosting;

/// <summary>The hosting layer driven in-process: cheap cases of start-up errors, configuration sources, metrics.</summary>
[TestFixture]
[NonParallelizable] // swaps Console.Error and sets environment variables
public sealed class VipdInProcessTests
{
    private static readonly Dictionary<string, string> NoSwitches = new(StringComparer.Ordinal);

    private static async Task<(int Code, string StdErr)> RunVipdAsync(params string[] args)
    {
        var saved = Console.Error;
        using var err = new StringWriter();
        Console.SetError(err);
        try
        {
            var code = await Vipd.RunAsync(args);
            return (code, err.ToString());
        }
        finally
        {
            Console.SetError(saved);
        }
    }

    [Test]
    public async Task Unknown_switch_is_one_line_and_exit_code_78()
    {
        var (code, stderr) = await RunVipdAsync("vip", "--lisen", "127.0.0.1:0");
        Assert.Multiple(() =>
        {
            Assert.That(code, Is.EqualTo(78));
            Assert.That(stderr, Is.EqualTo("vipd vip: unknown switch '--lisen' (see --help)" + Environment.NewLine));
        });
    }

    [Test]
    public async Task Unknown_role_is_a_usage_error()
    {
        var (code, stderr) = await RunVipdAsync("tier9");
        Assert.Multiple(() =>
        {
            Assert.That(code, Is.EqualTo(64));
            Assert.That(stderr, Does.Contain("unknown role 'tier9'"));
        });
    }

    [Test]
    public void Configuration_precedence_is_file_then_environment_then_switches()
    {
        var file = Path.Combine(Path.GetTempPath(), $"vip-precedence-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, """{ "HostTest": { "A": "file", "B": "file", "C": "file" } }""");
        Environment.SetEnvironmentVariable("VIPD_HostTest__B", "env");
        Environment.SetEnvironmentVariable("VIPD_HostTest__C", "env");
        try
        {
            var switches = new Dictionary<string, string>(StringComparer.Ordinal) { ["--c"] = "HostTest:C", ["--attr"] = "HostTest:Attr" };
            var builder = RoleHost.CreateBuilder("hosttest", ["--config", file, "--c", "switch", "--attr", "k=v", "--attr", "x=y"], switches, ["--attr"]);
            var c = builder.Configuration;
            Assert.Multiple(() =>
            {
                Assert.That(c["HostTest:A"], Is.EqualTo("file"));
                Assert.That(c["HostTest:B"], Is.EqualTo("env"));
                Assert.That(c["HostTest:C"], Is.EqualTo("switch"));
                Assert.That(c["HostTest:Attr:0"], Is.EqualTo("k=v"));
                Assert.That(c["HostTest:Attr:1"], Is.EqualTo("x=y"));
            });
        }
        finally
        {
            Environment.SetEnvironmentVariable("VIPD_HostTest__B", null);
            Environment.SetEnvironmentVariable("VIPD_HostTest__C", null);
            File.Delete(file);
        }
    }

    [Test]
    public void Options_that_fail_validation_stop_start_up_with_one_line()
    {
        var builder = RoleHost.CreateBuilder("hosttest", ["--HostTest:Capacity", "0"], NoSwitches);
        builder.Services.AddValidatedOptions<TestOptions>(builder.Configuration, "HostTest");
        var ex = Assert.ThrowsAsync<StartupException>(() => RoleHost.RunAsync(builder.Build()))!;
        Assert.That(ex.Message, Does.StartWith("invalid TestOptions:").And.Contain("Capacity").And.Not.Contain("\n"));
    }

    [Test]
    public void Unknown_option_key_is_a_start_up_error_not_a_silent_default()
    {
        var builder = RoleHost.CreateBuilder("hosttest", ["--HostTest:Capacty", "5"], NoSwitches);
        builder.Services.AddValidatedOptions<TestOptions>(builder.Configuration, "HostTest");
        var ex = Assert.ThrowsAsync<StartupException>(() => RoleHost.RunAsync(builder.Build()))!;
        Assert.That(ex.Message, Does.Contain("Capacty"));
    }

    [Test]
    public void Option_of_the_wrong_type_names_the_key()
    {
        var builder = RoleHost.CreateBuilder("hosttest", ["--HostTest:Capacity", "many"], NoSwitches);
        builder.Services.AddValidatedOptions<TestOptions>(builder.Configuration, "HostTest");
        var ex = Assert.ThrowsAsync<StartupException>(() => RoleHost.RunAsync(builder.Build()))!;
        Assert.That(ex.Message, Does.Contain("HostTest:Capacity"));
    }

    [Test]
    public async Task Faulted_background_service_makes_the_exit_code_non_zero()
    {
        var builder = RoleHost.CreateBuilder("hosttest", [], NoSwitches);
        builder.Services.AddHostedService<FailingService>();
        var code = await RoleHost.RunAsync(builder.Build()).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.That(code, Is.EqualTo(1));
    }

    [Test]
    public void Metrics_are_off_unless_asked_for()
    {
        using var host = RoleHost.CreateBuilder("hosttest", [], NoSwitches).Build();
        Assert.That(host.Services.GetService<MeterProvider>(), Is.Null);
    }

    [Test]
    public async Task Prometheus_endpoint_exports_Vip_meters_and_nothing_else()
    {
        using var vipMeter = new Meter("Vip.HostingTest");
        using var otherMeter = new Meter("Other.HostingTest");
        var otherCounter = otherMeter.CreateCounter<long>("other.test.tasks");

        // HttpListener cannot listen on port 0: take a free port, release it, and retry if someone else grabs it.
        for (var attempt = 1; ; attempt++)
        {
            var port = FreePort();
            var builder = RoleHost.CreateBuilder("hosttest", ["--metrics", $"127.0.0.1:{port}"], NoSwitches);
            var host = builder.Build();
            var run = RoleHost.RunAsync(host);
            try
            {
                using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
                string body;
                try
                {
                    body = await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics"));
                }
                catch (HttpRequestException) when (attempt < 3 && run.IsFaulted)
                {
                    continue; // the port was taken between FreePort and the listener
                }

                // Measurements made once the exporter listens are exported; scrapes are cached for 300 ms, so poll.
                vipMeter.CreateCounter<long>("vip.test.after").Add(3);
                otherCounter.Add(7); // same moment, same listener: only the meter name keeps it out
                const string expected = "vip_test_after_total{otel_scope_name=\"Vip.HostingTest\"} 3";
                for (var i = 0; i < 100 && !body.Contains(expected, StringComparison.Ordinal); i++)
                {
                    await Task.Delay(100);
                    body = await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics"));
                }

                Assert.Multiple(() =>
                {
                    Assert.That(body, Does.Contain(expected));
                    Assert.That(body, Does.Contain("service_name=\"vipd-hosttest\""));
                    Assert.That(body, Does.Not.Contain("other_test_tasks"));
                });
                return;
            }
            finally
            {
                host.Services.GetRequiredService<IHostApplicationLifetime>().StopApplication();
                await run.WaitAsync(TimeSpan.FromSeconds(30));
            }
        }
    }

    private static int FreePort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    private sealed class TestOptions
    {
        [System.ComponentModel.DataAnnotations.Range(1, 10_000)]
        public int Capacity { get; set; } = 100;
    }

    private sealed class FailingService : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            await Task.Yield();
            throw new InvalidOperationException("the accept loop died");
        }
    }
}
