using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using Vip.Forwarding;
using Vip.Protocol;

namespace Vip.Tests.Forwarding;

public class ProxyHeaderForwardingTests(RelayTransport transport) : TransportFixture(transport)
{
    /// <summary>A backend that requires a PROXY v2 header, answers with what it says, then echoes the client's bytes.</summary>
    private static TestServer ProxyAwareBackend() => new(async s =>
    {
        var reader = PipeReader.Create(new NetworkStream(s, ownsSocket: false));
        ProxyHeader header;
        while (true)
        {
            var result = await reader.ReadAsync();
            var consumed = result.Buffer.Start;
            var examined = result.Buffer.End;
            if (ProxyProtocolReader.Default.TryParse(result.Buffer, ref consumed, ref examined, out header))
            {
                reader.AdvanceTo(consumed, examined);
                break;
            }

            reader.AdvanceTo(consumed, examined);
            if (result.IsCompleted)
            {
                return;
            }
        }

        await s.SendAsync(Encoding.ASCII.GetBytes($"{header.GetSourceEndPoint()} -> {header.GetDestinationEndPoint()} {header.Transport}\n"));
        while (true)
        {
            var result = await reader.ReadAsync();
            foreach (var segment in result.Buffer)
            {
                await s.SendAsync(segment);
            }

            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                s.Shutdown(SocketShutdown.Send);
                return;
            }
        }
    });

    [Test]
    public async Task The_PROXY_header_a_backend_receives_names_the_real_client()
    {
        await using var backend = ProxyAwareBackend();
        var options = Options(backend);
        options.ProxyProtocol = true;
        await using var vip = await Net.StartAsync(options);

        using var client = await Net.ConnectAsync(vip.TcpEndPoints[0], from: System.Net.IPAddress.Parse("127.0.0.3"));
        var line = await Net.ReadLineAsync(client);
        Assert.That(line, Is.EqualTo($"{client.LocalEndPoint} -> {vip.TcpEndPoints[0]} Stream"));

        await client.SendAsync("payload after the header"u8.ToArray());
        client.Shutdown(SocketShutdown.Send);
        Assert.That(Encoding.ASCII.GetString(await Net.ReadToEndAsync(client)), Is.EqualTo("payload after the header"));
    }

    [Test]
    public async Task The_PROXY_header_is_sent_only_to_backends_that_want_it()
    {
        await using var aware = ProxyAwareBackend();
        await using var plain = TestServer.Named("plain");
        var options = Options();
        options.Backends.Add(new BackendOptions { Address = aware.Address, ProxyProtocol = true });
        options.Backends.Add(new BackendOptions { Address = plain.Address });
        await using var vip = await Net.StartAsync(options);

        using var first = await Net.ConnectAsync(vip.TcpEndPoints[0]);
        Assert.That(await Net.ReadLineAsync(first), Does.StartWith($"{first.LocalEndPoint} -> "));
        using var second = await Net.ConnectAsync(vip.TcpEndPoints[0]);
        Assert.That(await Net.ReadLineAsync(second), Is.EqualTo("plain"));
    }

    [Test]
    public async Task Ping_checks_send_a_LOCAL_header_first_to_PROXY_backends()
    {
        var sawLocal = new TaskCompletionSource<bool>();
        await using var tier1 = new TestServer(async s =>
        {
            var bytes = new byte[ProxyProtocol.FixedHeaderLength + FrameHeader.Size];
            await Net.ReadExactlyAsync(s, bytes);
            var header = ProxyProtocolReader.Default.ParseDatagram(bytes, out var n);
            sawLocal.TrySetResult(header.IsLocal);
            var ping = FrameHeader.Read(bytes.AsSpan(n), 64);
            var pong = new byte[FrameHeader.Size];
            new FrameHeader(FrameType.Pong, 0, 0, ping.RequestId).WriteTo(pong);
            await s.SendAsync(pong);
        });
        var options = Options(tier1);
        options.ProxyProtocol = true;
        options.HealthCheck.Mode = HealthCheckMode.Ping;
        await using var vip = await Net.StartAsync(options);
        Assert.That(await sawLocal.Task.WaitAsync(Net.Patience), Is.True);
        Assert.That(vip.GetBackends()[0].IsUp, Is.True);
    }
}
