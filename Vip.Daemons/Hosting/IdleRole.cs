using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Vip.Daemons.Hosting;

/// <summary>
/// <c>vipd idle --listen HOST:PORT</c> (hidden): a daemon that only listens and closes what it accepts. It runs the
/// whole hosting stack — configuration, systemd notify and watchdog, metrics, one-line start-up errors — with no
/// other part of the system, so an install can be checked on its own (<c>systemd-run</c> or a unit) and the
/// hosting tests need no role of another area.
/// </summary>
internal sealed class IdleRole : IRole
{
    private static readonly Dictionary<string, string> Switches = new(StringComparer.Ordinal)
    {
        ["--listen"] = "Idle:Listen",
    };

    public string Name => "idle";
    public string Summary => "listen and do nothing (checks the hosting set-up)";
    public string Usage => """
        usage: vipd idle --listen HOST:PORT [--config PATH] [--metrics HOST:PORT]

        Listens on HOST:PORT (port 0: any free port, printed in the log), closes every connection it accepts,
        and otherwise only runs the hosting layer: systemd READY/WATCHDOG/STOPPING, metrics, logs.
        """;

    public async Task<int> RunAsync(string[] args)
    {
        var builder = RoleHost.CreateBuilder(Name, args, Switches);
        var listen = ConfigParse.Endpoint(builder.Configuration["Idle:Listen"], "Idle:Listen");
        builder.Services.AddSingleton(new IdleListener.Settings(listen));
        builder.Services.AddHostedService<IdleListener>();
        return await RoleHost.RunAsync(builder.Build()).ConfigureAwait(false);
    }
}

/// <summary>Binds in StartAsync (so READY=1 means listening), accepts and closes until stopped.</summary>
internal sealed partial class IdleListener(IdleListener.Settings settings, IHealthSignal health, ILogger<IdleListener> log) : IHostedService, IDisposable
{
    public sealed record Settings(IPEndPoint Listen);

    private Socket? _socket;
    private Task? _accepting;
    private readonly CancellationTokenSource _stop = new();

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _socket = ConfigParse.Bind("Idle:Listen", settings.Listen, () =>
        {
            var s = new Socket(settings.Listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                s.Bind(settings.Listen);
                s.Listen(128);
                return s;
            }
            catch
            {
                s.Dispose();
                throw;
            }
        });
        Listening(log, _socket.LocalEndPoint!.ToString()!);
        health.Report("idle.listener", healthy: true);
        _accepting = AcceptLoopAsync(_socket, _stop.Token);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _socket?.Dispose();
        if (_accepting is not null)
        {
            await _accepting.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        _stop.Dispose();
        _socket?.Dispose();
    }

    private async Task AcceptLoopAsync(Socket socket, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using var accepted = await socket.AcceptAsync(stop).ConfigureAwait(false);
            }
            catch (Exception ex) when (stop.IsCancellationRequested && ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            catch (SocketException ex)
            {
                // The listener broke under us: that is what the watchdog is for.
                health.Report("idle.listener", healthy: false, ex.Message);
                return;
            }
        }
    }

    [LoggerMessage(EventId = 190, Level = LogLevel.Information, Message = "idle: listening on {Endpoint}")]
    private static partial void Listening(ILogger logger, string endpoint);
}
