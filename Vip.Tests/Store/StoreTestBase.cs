using System.Net;
using Vip.Store;

namespace Vip.Tests.Store;

/// <summary>A fresh directory per test and helpers to open stores in it.</summary>
public abstract class StoreTestBase
{
    protected string Dir { get; private set; } = null!;

    protected string DbPath => Path.Combine(Dir, "tier2.db");

    [SetUp]
    public void CreateDirectory()
    {
        Dir = Path.Combine(Path.GetTempPath(), "vip-store-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Dir);
    }

    [TearDown]
    public void DeleteDirectory()
    {
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    protected VipStore Open(Action<StoreOptions>? configure = null, TimeProvider? time = null)
    {
        var o = new StoreOptions { Path = DbPath, RetryInitialDelay = TimeSpan.FromMilliseconds(5), RetryMaxDelay = TimeSpan.FromMilliseconds(50) };
        configure?.Invoke(o);
        return VipStore.Open(o, time: time);
    }

    protected static Dictionary<string, string> Attrs(params string[] pairs) =>
        pairs.Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);

    protected static AppServerRegistration Server(string id, int port = 9000, int capacity = 10, params string[] attrs) =>
        new(id, new IPEndPoint(IPAddress.Parse("127.0.0.2"), port), Attrs(attrs), capacity);

    /// <summary>Waits for a task with a generous bound, so a lost completion fails the test instead of hanging it.</summary>
    protected static async Task Within(Task task, int seconds = 20) => await task.WaitAsync(TimeSpan.FromSeconds(seconds));

    protected static async Task<T> Within<T>(Task<T> task, int seconds = 20) => await task.WaitAsync(TimeSpan.FromSeconds(seconds));
}
