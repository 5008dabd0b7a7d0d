using System.Net;
using System.Net.Sockets;
using Vip.Dispatch.Tier1;
using Vip.Protocol;

namespace Vip.Tests.Dispatch.Tier1;

[Parallelizable(ParallelScope.All)]
public class SocketReceiverTests
{
    private static async Task<(Socket Client, Socket Server)> ConnectedPairAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var accept = listener.AcceptAsync();
        await client.ConnectAsync(listener.LocalEndPoint!);
        return (client, await accept);
    }

    private static byte[] Ping(ulong requestId)
    {
        var frame = new byte[FrameHeader.Size];
        new FrameHeader(FrameType.Ping, 0, 0, requestId).WriteTo(frame);
        return frame;
    }

    [Test]
    public async Task An_idle_connection_waits_without_a_buffer()
    {
        var (client, server) = await ConnectedPairAsync();
        using var clientOwner = client;
        using var serverOwner = server;
        using var receiver = new SocketReceiver(server, 1024, releaseWhenIdle: true);

        var read = receiver.ReceiveAsync(holdBuffer: false, CancellationToken.None).AsTask();
        await Task.Delay(50);
        Assert.That(read.IsCompleted, Is.False);
        Assert.That(receiver.HoldsBuffer, Is.False, "waiting with nothing in flight must hold no buffer");

        await client.SendAsync(Ping(7));
        Assert.That(await read.WaitAsync(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(receiver.TryReadFrame(out var header, out _), Is.True);
        Assert.That(header.RequestId, Is.EqualTo(7UL));
    }

    [Test]
    public async Task A_busy_connection_keeps_its_buffer_between_reads_and_still_cuts_every_frame()
    {
        var (client, server) = await ConnectedPairAsync();
        using var clientOwner = client;
        using var serverOwner = server;
        using var receiver = new SocketReceiver(server, 1024, releaseWhenIdle: true);

        for (ulong id = 1; id <= 3; id++)
        {
            var read = receiver.ReceiveAsync(holdBuffer: true, CancellationToken.None).AsTask();
            if (id > 1)
            {
                await Task.Delay(20);
                Assert.That(receiver.HoldsBuffer, Is.True, "tasks in flight: the buffer is kept for the next read");
            }

            await client.SendAsync(Ping(id));
            Assert.That(await read.WaitAsync(TimeSpan.FromSeconds(5)), Is.True);
            Assert.That(receiver.TryReadFrame(out var header, out _), Is.True);
            Assert.That(header.RequestId, Is.EqualTo(id));
            Assert.That(receiver.Available, Is.Zero);
        }

        client.Shutdown(SocketShutdown.Send);
        Assert.That(await receiver.ReceiveAsync(holdBuffer: true, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(5)), Is.False);
    }
}
