using System.Runtime.InteropServices;

namespace Vip.Store;

/// <summary>fsync of a directory, so a file created or renamed in it survives a power cut (Unix only; best effort).</summary>
internal static partial class DirectorySync
{
    private const int ORdonly = 0;

    public static void TryFsync(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var fd = Open(directory, ORdonly);
        if (fd < 0)
        {
            return;
        }

        _ = Fsync(fd);
        _ = Close(fd);
    }

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
#pragma warning disable CA2101 // the path is marshalled as UTF-8, which is what Linux expects
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);
#pragma warning restore CA2101

    [DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static extern int Fsync(int fd);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);
}
