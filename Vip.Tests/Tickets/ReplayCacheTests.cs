using Vip.Tickets;

namespace Vip.Tests.Tickets;

public class ReplayCacheTests
{
    private const long Horizon = 60_000;
    private const long T0 = 1_800_000_000_000;

    [Test]
    public void Entry_is_held_until_its_expiry_and_forgotten_within_a_tick_after()
    {
        var cache = new ReplayCache(1024, Horizon);
        cache.Add(1, T0 + 30_000, T0);
        cache.Purge(T0 + 30_000);
        Assert.That(cache.Contains(1), Is.True, "at its expiry");
        cache.Purge(T0 + 30_000 + 256);
        Assert.Multiple(() =>
        {
            Assert.That(cache.Contains(1), Is.False);
            Assert.That(cache.Count, Is.Zero);
        });
    }

    [Test]
    public void Out_of_order_expiries_are_each_forgotten_at_their_own_time()
    {
        var cache = new ReplayCache(1024, Horizon);
        cache.Add(1, T0 + 50_000, T0);
        cache.Add(2, T0 + 10_000, T0 + 1);
        cache.Add(3, T0 + 30_000, T0 + 2);
        cache.Purge(T0 + 11_000);
        Assert.That(new[] { cache.Contains(1), cache.Contains(2), cache.Contains(3) }, Is.EqualTo(new[] { true, false, true }));
        cache.Purge(T0 + 31_000);
        Assert.That(new[] { cache.Contains(1), cache.Contains(3) }, Is.EqualTo(new[] { true, false }));
        cache.Purge(T0 + 51_000);
        Assert.That(cache.Count, Is.Zero);
    }

    [Test]
    public void Full_cache_drops_the_earliest_expiry_and_raises_the_floor_to_it()
    {
        var cache = new ReplayCache(1024, Horizon);
        for (var i = 0; i < 1024; i++)
        {
            cache.Add((UInt128)(i + 1), T0 + 40_000 - (i * 10), T0); // the last added expires first
        }

        Assert.That(cache.Floor, Is.EqualTo(long.MinValue));
        cache.Add(5000, T0 + 45_000, T0);
        Assert.Multiple(() =>
        {
            Assert.That(cache.Count, Is.EqualTo(1024));
            Assert.That(cache.Evicted, Is.EqualTo(1));
            Assert.That(cache.Contains(1024), Is.False, "the earliest expiry went first");
            Assert.That(cache.Floor, Is.EqualTo(T0 + 40_000 - (1023 * 10)));
            Assert.That(cache.Contains(5000), Is.True);
        });
    }

    [Test]
    public void Clock_jumping_past_a_whole_turn_forgets_everything_once()
    {
        var cache = new ReplayCache(4096, Horizon);
        for (var i = 0; i < 3000; i++)
        {
            cache.Add((UInt128)(i + 1), T0 + (i * 20), T0);
        }

        cache.Purge(T0 + (100 * Horizon));
        Assert.That(cache.Count, Is.Zero);
        cache.Add(7, T0 + (100 * Horizon) + 1000, T0 + (100 * Horizon));
        Assert.That(cache.Contains(7), Is.True);
    }

    [Test]
    public void Clock_going_back_never_forgets_early()
    {
        var cache = new ReplayCache(1024, Horizon);
        cache.Add(1, T0 + 30_000, T0);
        cache.Purge(T0 - 20_000);
        cache.Add(2, T0 - 20_000 + 5_000, T0 - 20_000); // lands behind the cursor: kept until the wheel comes round
        cache.Purge(T0 + 29_000);
        Assert.That(new[] { cache.Contains(1), cache.Contains(2) }, Is.EqualTo(new[] { true, true }));
        cache.Purge(T0 + 31_000);
        Assert.That(cache.Contains(1), Is.False);
    }

    [Test]
    public void Entries_are_reused_after_they_are_forgotten()
    {
        var cache = new ReplayCache(1024, Horizon);
        for (var round = 0; round < 50; round++)
        {
            var now = T0 + (round * 2_000L);
            for (var i = 0; i < 500; i++)
            {
                cache.Add((UInt128)((round * 1000) + i + 1), now + 1_000, now);
            }
        }

        Assert.Multiple(() =>
        {
            Assert.That(cache.Count, Is.EqualTo(500));
            Assert.That(cache.Evicted, Is.Zero);
        });
    }
}
