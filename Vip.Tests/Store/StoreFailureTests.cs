using System.Diagnostics;
using System.Net;
using LiteDB;
using Vip.Store;

namespace Vip.Tests.Store;

public class StoreFailureTests : StoreTestBase
{
    [TestCase("BeforeCommit")]
    [TestCase("BeforeCheckpoint")]
    public async Task Failing_writes_keep_serving_from_memory_and_are_retried_until_saved(string where)
    {
        var point = Enum.Parse<StoreFaultPoint>(where);
        await using (var store = Open())
        {
            await store.SetClientAsync("before", Attrs("x=1"));

            var failing = true;
            var failures = 0;
            store.Faults = p =>
            {
                if (failing && (p == point || p == StoreFaultPoint.Reopen))
                {
                    Interlocked.Increment(ref failures);
                    throw new IOException("No space left on device (injected)");
                }
            };

            var writes = new List<Task>
            {
                store.SetClientAsync("alice", Attrs("a=1")),
                store.RegisterServerAsync(Server("app-1")),
                store.SetNetworkRuleAsync(IPNetwork.Parse("10.0.0.0/8"), Attrs("n=1")),
                store.RemoveClientAsync("before"),
            };

            await WaitUntil(() => store.FailedWriteAttempts >= 3);
            Assert.That(writes.Select(w => w.IsCompleted), Is.All.False, "nothing is acknowledged while the disk fails");
            Assert.That(store.PendingWrites, Is.EqualTo(4));
            Assert.That(store.Snapshot.Clients.ContainsKey("alice"), Is.True, "memory keeps serving");

            // More writes while failing: merged with the queued ones, none dropped.
            writes.Add(store.SetClientAsync("alice", Attrs("a=2")));
            writes.Add(store.SetClientAsync("carol", Attrs("c=1")));

            failing = false;
            await Within(Task.WhenAll(writes));
            Assert.That(store.PendingWrites, Is.Zero);
            Assert.That(store.FailedWriteAttempts, Is.Zero);
            Assert.That(failures, Is.GreaterThanOrEqualTo(3));
        }

        await using var reopened = Open();
        Assert.That(reopened.Snapshot.Clients.Keys, Is.EquivalentTo(new[] { "alice", "carol" }));
        Assert.That(reopened.Snapshot.Clients["alice"].Attributes["a"], Is.EqualTo("2"));
        Assert.That(reopened.Snapshot.Servers.Keys, Is.EquivalentTo(new[] { "app-1" }));
        Assert.That(reopened.Snapshot.Networks, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task Shutdown_with_a_dead_disk_fails_the_unsaved_writes_instead_of_hanging()
    {
        var store = Open(o => o.ShutdownTimeout = TimeSpan.FromMilliseconds(300));
        store.Faults = _ => throw new IOException("disk gone (injected)");
        var write = store.SetClientAsync("alice", Attrs());

        await Within(store.DisposeAsync().AsTask());

        Assert.That(write.IsFaulted, Is.True);
        Assert.ThrowsAsync<StoreWriteException>(() => write);
        Assert.That(store.PendingWrites, Is.Zero);
    }

    [Test]
    public async Task Disk_full_on_a_real_file_system_is_retried_until_space_returns()
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
        {
            Assert.Ignore("needs root on Linux to mount a small tmpfs");
        }

        var mount = Path.Combine(Dir, "small");
        Directory.CreateDirectory(mount);
        if (!Run("mount", $"-t tmpfs -o size=1m vip-test-tmpfs {mount}"))
        {
            Assert.Ignore("cannot mount a tmpfs here (not permitted in this container)");
        }

        try
        {
            var path = Path.Combine(mount, "full.db");
            await using (var store = VipStore.Open(new StoreOptions { Path = path, RetryInitialDelay = TimeSpan.FromMilliseconds(10), RetryMaxDelay = TimeSpan.FromMilliseconds(100) }))
            {
                await store.SetClientAsync("first", Attrs("a=1"));

                // Fill the file system to the last byte.
                var filler = Path.Combine(mount, "filler");
                await using (var f = new FileStream(filler, FileMode.Create))
                {
                    var block = new byte[4096];
                    try
                    {
                        while (true)
                        {
                            f.Write(block);
                            f.Flush();
                        }
                    }
                    catch (IOException)
                    {
                    }
                }

                var big = Enumerable.Range(0, 32).ToDictionary(i => "k" + i, i => new string((char)('a' + (i % 26)), 200));
                var writes = Enumerable.Range(0, 20).Select(i => store.SetClientAsync("c" + i, big)).ToList();
                await WaitUntil(() => store.FailedWriteAttempts >= 2);
                Assert.That(writes.Select(w => w.IsCompleted), Is.All.False);
                Assert.That(store.PendingWrites, Is.GreaterThan(0));
                Assert.That(store.Snapshot.Clients, Has.Count.EqualTo(21));

                File.Delete(filler);
                await Within(Task.WhenAll(writes));
                Assert.That(store.PendingWrites, Is.Zero);
            }

            await using var reopened = VipStore.Open(new StoreOptions { Path = path });
            Assert.That(reopened.Snapshot.Clients, Has.Count.EqualTo(21));
            Assert.That(reopened.Snapshot.Clients["c19"].Attributes, Has.Count.EqualTo(32));
        }
        finally
        {
            Run("umount", mount);
        }
    }

    [Test]
    public void Missing_directory_fails_open_with_one_line_naming_the_path()
    {
        var path = Path.Combine(Dir, "no", "such", "dir", "tier2.db");
        var ex = Assert.Throws<StoreOpenException>(() => VipStore.Open(new StoreOptions { Path = path }));
        Assert.That(ex!.Message, Does.StartWith($"cannot open store '{path}'").And.Contain("does not exist"));
        Assert.That(ex.Message, Does.Not.Contain('\n'));
        Assert.That(ex.Path, Is.EqualTo(path));
    }

    [Test]
    public async Task Store_open_in_this_process_cannot_be_opened_twice()
    {
        await using var first = Open();
        var ex = Assert.Throws<StoreOpenException>(() => Open());
        Assert.That(ex!.Message, Does.Contain(DbPath).And.Contain("in use by another process"));
    }

    [Test]
    public async Task Store_open_in_another_process_cannot_be_opened()
    {
        using var child = StoreCrashTests.StartTorture(DbPath, 1, count: 0);
        try
        {
            await StoreCrashTests.WaitForLine(child, "ready", TimeSpan.FromSeconds(30));
            var ex = Assert.Throws<StoreOpenException>(() => Open());
            Assert.That(ex!.Message, Does.Contain(DbPath).And.Contain("in use by another process"));
        }
        finally
        {
            child.Kill();
            await child.WaitForExitAsync();
        }

        await using var afterwards = Open(); // the kernel dropped the dead process's lock
        Assert.That(afterwards.Snapshot, Is.Not.Null);
    }

    [Test]
    public void Lock_released_by_a_failed_open_lets_the_next_open_succeed()
    {
        File.WriteAllBytes(DbPath, new byte[100]);
        Assert.Throws<StoreOpenException>(() => Open());
        File.Delete(DbPath);
        Assert.DoesNotThrow(() => Open().Dispose());
    }

    [TestCase(100, TestName = "Short_garbage_file_fails_open")]
    [TestCase(20000, TestName = "Long_garbage_file_fails_open")]
    public void Garbage_file_fails_open_and_is_left_untouched(int length)
    {
        var garbage = new byte[length];
        new Random(7).NextBytes(garbage);
        File.WriteAllBytes(DbPath, garbage);

        var ex = Assert.Throws<StoreOpenException>(() => Open());

        Assert.That(ex!.Message, Does.StartWith($"cannot open store '{DbPath}'").And.Contain("not a LiteDB file"));
        Assert.That(File.ReadAllBytes(DbPath), Is.EqualTo(garbage), "a file that is not ours is never modified");
    }

    [Test]
    public async Task Corrupt_pages_in_a_store_fail_open()
    {
        await using (var store = Open())
        {
            for (var i = 0; i < 150; i++)
            {
                _ = store.SetClientAsync("client-" + i, Attrs("pad=" + new string('p', 200)));
            }

            await store.FlushAsync();
        }

        // Keep the header page, scramble every page after it.
        var bytes = File.ReadAllBytes(DbPath);
        Assert.That(bytes.Length, Is.GreaterThan(3 * 8192));
        new Random(11).NextBytes(bytes.AsSpan(8192));
        File.WriteAllBytes(DbPath, bytes);

        var ex = Assert.Throws<StoreOpenException>(() => Open());
        Assert.That(ex!.Message, Does.StartWith($"cannot open store '{DbPath}'"));
        Assert.That(ex.Message, Does.Not.Contain('\n'));
    }

    [Test]
    public void Foreign_litedb_file_fails_open()
    {
        using (var db = new LiteDatabase(new ConnectionString { Filename = DbPath, Connection = ConnectionType.Direct }))
        {
            db.GetCollection("customers").Insert(new BsonDocument { ["name"] = "x" });
        }

        var ex = Assert.Throws<StoreOpenException>(() => Open());
        Assert.That(ex!.Message, Does.Contain("not a Vip store").And.Contain("customers"));
    }

    [Test]
    public void Directory_as_store_path_fails_open()
    {
        Directory.CreateDirectory(DbPath);
        var ex = Assert.Throws<StoreOpenException>(() => Open());
        Assert.That(ex!.Message, Does.Contain("is a directory"));
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(20))
            {
                Assert.Fail("condition not reached in 20 s");
            }

            await Task.Delay(5);
        }
    }

    private static bool Run(string file, string args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        p.WaitForExit(10_000);
        return p.HasExited && p.ExitCode == 0;
    }
}
