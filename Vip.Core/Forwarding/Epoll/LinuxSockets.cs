using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vip.Forwarding.Epoll;

/// <summary>
/// The few Linux calls the epoll relay makes itself (libc): epoll, eventfd, recv/send/sendmsg with
/// <c>MSG_DONTWAIT</c>, shutdown. Everything else about a socket (create, connect, options, close) stays with
/// <see cref="Socket"/>.
/// </summary>
internal static unsafe partial class LinuxSockets
{
    public const uint EPOLLIN = 0x001;
    public const uint EPOLLOUT = 0x004;
    public const uint EPOLLERR = 0x008;
    public const uint EPOLLHUP = 0x010;

    public const int EPOLL_CTL_ADD = 1;
    public const int EPOLL_CTL_DEL = 2;
    public const int EPOLL_CTL_MOD = 3;

    private const int EPOLL_CLOEXEC = 0x80000;
    private const int EFD_CLOEXEC = 0x80000;
    private const int EFD_NONBLOCK = 0x800;
    private const int MSG_DONTWAIT = 0x40;
    private const int MSG_NOSIGNAL = 0x4000;
    private const int SHUT_WR = 1;

    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int ECONNREFUSED = 111;
    public const int EINPROGRESS = 115;

    /// <summary>Most buffers one gathered send passes to the kernel (the rest goes on the next send).</summary>
    public const int MaxIoVectors = 32;

    /// <summary>True where this relay can run: Linux on x64 or arm64 (the two epoll_event layouts handled here).</summary>
    public static bool IsSupported =>
        OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    /// <summary>Whether <paramref name="transport"/> means the epoll loops here (Auto does where they are supported).</summary>
    public static bool UsesEpoll(RelayTransport transport) =>
        transport == RelayTransport.Epoll || (transport == RelayTransport.Auto && IsSupported);

    /// <summary>Size of one <c>struct epoll_event</c>: packed (12 bytes) on x86-64, naturally aligned (16) elsewhere.</summary>
    public static readonly int EventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;

    private static readonly int DataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    public static uint EventMask(byte* events, int index) => Unsafe.ReadUnaligned<uint>(events + (index * EventSize));

    public static ulong EventData(byte* events, int index) => Unsafe.ReadUnaligned<ulong>(events + (index * EventSize) + DataOffset);

    public static int CreateEpoll() => epoll_create1(EPOLL_CLOEXEC);

    public static int CreateEventFd() => eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    /// <summary>Adds, changes or removes an fd's interest; returns 0 or the errno.</summary>
    public static int Control(int epoll, int operation, int fd, uint events, ulong data)
    {
        byte* ev = stackalloc byte[16];
        Unsafe.WriteUnaligned(ev, events);
        Unsafe.WriteUnaligned(ev + DataOffset, data);
        return epoll_ctl(epoll, operation, fd, ev) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>Waits for events; returns their count, or -errno.</summary>
    public static int Wait(int epoll, byte* events, int max, int timeoutMs)
    {
        var n = epoll_wait(epoll, events, max, timeoutMs);
        return n >= 0 ? n : -Marshal.GetLastPInvokeError();
    }

    /// <summary>Adds one to an eventfd (wakes the loop waiting on it).</summary>
    public static void Signal(int eventFd)
    {
        ulong one = 1;
        _ = write(eventFd, &one, sizeof(ulong));
    }

    /// <summary>Resets an eventfd to zero.</summary>
    public static void Drain(int eventFd)
    {
        ulong value;
        _ = read(eventFd, &value, sizeof(ulong));
    }

    public static void Close(int fd) => _ = close(fd);

    /// <summary>Non-blocking receive; returns the bytes read (0 at end of stream) or -errno.</summary>
    public static nint Receive(int fd, Span<byte> buffer)
    {
        fixed (byte* p = buffer)
        {
            var n = recv(fd, p, buffer.Length, MSG_DONTWAIT);
            return n >= 0 ? n : -Marshal.GetLastPInvokeError();
        }
    }

    /// <summary>Non-blocking send of one buffer; returns the bytes sent or -errno. Never raises SIGPIPE.</summary>
    public static nint Send(int fd, ReadOnlySpan<byte> buffer)
    {
        fixed (byte* p = buffer)
        {
            var n = send(fd, p, buffer.Length, MSG_DONTWAIT | MSG_NOSIGNAL);
            return n >= 0 ? n : -Marshal.GetLastPInvokeError();
        }
    }

    /// <summary>Non-blocking gathered send of up to <see cref="MaxIoVectors"/> pinned buffers; returns bytes sent or -errno.</summary>
    public static nint SendGathered(int fd, IoVector* vectors, int count)
    {
        MessageHeader header = default;
        header.Iov = vectors;
        header.IovLen = count;
        var n = sendmsg(fd, &header, MSG_DONTWAIT | MSG_NOSIGNAL);
        return n >= 0 ? n : -Marshal.GetLastPInvokeError();
    }

    /// <summary>Non-blocking receive of one datagram and its sender's address (native sockaddr); returns its length or -errno.</summary>
    public static nint ReceiveFrom(int fd, Span<byte> buffer, Span<byte> address, out int addressLength)
    {
        fixed (byte* p = buffer)
        fixed (byte* a = address)
        {
            var length = address.Length;
            var n = recvfrom(fd, p, buffer.Length, MSG_DONTWAIT, a, &length);
            addressLength = length;
            return n >= 0 ? n : -Marshal.GetLastPInvokeError();
        }
    }

    /// <summary>Non-blocking send of one datagram to a native sockaddr; returns the bytes sent or -errno.</summary>
    public static nint SendTo(int fd, ReadOnlySpan<byte> buffer, ReadOnlySpan<byte> address)
    {
        fixed (byte* p = buffer)
        fixed (byte* a = address)
        {
            var n = sendto(fd, p, buffer.Length, MSG_DONTWAIT | MSG_NOSIGNAL, a, address.Length);
            return n >= 0 ? n : -Marshal.GetLastPInvokeError();
        }
    }

    /// <summary>Starts a connect to a native sockaddr; returns 0 (connected), or the errno (EINPROGRESS: wait for EPOLLOUT).</summary>
    public static int Connect(int fd, ReadOnlySpan<byte> address)
    {
        fixed (byte* a = address)
        {
            return connect(fd, a, address.Length) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
    }

    /// <summary>Sends a FIN (half-close); returns 0 or the errno.</summary>
    public static int ShutdownSend(int fd) => shutdown(fd, SHUT_WR) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>The <see cref="SocketError"/> for an errno the relay reports.</summary>
    public static SocketError ToSocketError(int errno) => errno switch
    {
        104 => SocketError.ConnectionReset,   // ECONNRESET
        32 => SocketError.Shutdown,           // EPIPE
        110 => SocketError.TimedOut,          // ETIMEDOUT
        113 => SocketError.HostUnreachable,   // EHOSTUNREACH
        101 => SocketError.NetworkUnreachable, // ENETUNREACH
        111 => SocketError.ConnectionRefused, // ECONNREFUSED
        103 => SocketError.ConnectionAborted, // ECONNABORTED
        _ => SocketError.SocketError,
    };

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVector
    {
        public void* Base;
        public nint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MessageHeader
    {
        public void* Name;
        public int NameLen;
        public IoVector* Iov;
        public nint IovLen;
        public void* Control;
        public nint ControlLen;
        public int Flags;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_create1(int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_ctl(int epfd, int op, int fd, void* ev);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_wait(int epfd, void* events, int maxevents, int timeout);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int eventfd(uint initval, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint read(int fd, void* buf, nint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint write(int fd, void* buf, nint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint recv(int fd, void* buf, nint len, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint send(int fd, void* buf, nint len, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint recvfrom(int fd, void* buf, nint len, int flags, void* addr, int* addrlen);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint sendto(int fd, void* buf, nint len, int flags, void* addr, int addrlen);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint sendmsg(int fd, MessageHeader* msg, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int connect(int fd, void* addr, int addrlen);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int shutdown(int fd, int how);
}
