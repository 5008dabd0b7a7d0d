using System.Text;
using Vip.Selection;

namespace Vip.Tests.Selection;

public class RequirementCacheTests
{
    [Test]
    public void Repeated_requirement_is_parsed_once()
    {
        var cache = new RequirementCache();

        RequirementExpression a = cache.GetOrParse("region=eu, cores>=8");
        RequirementExpression b = cache.GetOrParse("region=eu, cores>=8");
        RequirementExpression c = cache.GetOrParse("region=eu, cores>=8"u8);

        Assert.That(b, Is.SameAs(a));
        Assert.That(c, Is.SameAs(a));
        Assert.That(cache.Misses, Is.EqualTo(1));
    }

    [Test]
    public void Cached_lookup_from_utf8_allocates_nothing()
    {
        var cache = new RequirementCache();
        byte[] text = Encoding.UTF8.GetBytes("region=eu, tier in (gold,silver), cores>=8");
        cache.GetOrParse(text);
        cache.GetOrParse(text);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            cache.GetOrParse(text);
        }

        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }

    [Test]
    public void Bad_requirement_is_cached_as_an_error()
    {
        var cache = new RequirementCache();

        var first = Assert.Throws<RequirementSyntaxException>(() => cache.GetOrParse("a in (b"u8));
        var second = Assert.Throws<RequirementSyntaxException>(() => cache.GetOrParse("a in (b"));

        Assert.That(second!.Message, Is.EqualTo(first!.Message));
        Assert.That(cache.Misses, Is.EqualTo(1));
    }

    [Test]
    public void Invalid_utf8_is_a_syntax_error()
    {
        var cache = new RequirementCache();

        var ex = Assert.Throws<RequirementSyntaxException>(() => cache.GetOrParse([(byte)'a', (byte)'=', 0xC3]));

        Assert.That(ex!.Message, Is.EqualTo("invalid UTF-8 at 2"));
    }

    [Test]
    public void Over_long_utf8_is_refused_without_parsing()
    {
        var cache = new RequirementCache(limits: new RequirementLimits { MaxLength = 10 });

        var ex = Assert.Throws<RequirementSyntaxException>(() => cache.GetOrParse(Encoding.UTF8.GetBytes(new string('a', 4000))));

        Assert.That(ex!.Message, Is.EqualTo("requirement longer than 10 characters at 10"));
        Assert.That(cache.Misses, Is.Zero);
    }

    [Test]
    public void Cache_stays_bounded_and_forgets_the_oldest_requirements()
    {
        var cache = new RequirementCache(capacity: 8);
        cache.GetOrParse("k=first");
        for (int i = 0; i < 100; i++)
        {
            cache.GetOrParse($"k=v{i}");
        }

        long misses = cache.Misses;
        cache.GetOrParse("k=first");
        cache.GetOrParse("k=v99");

        Assert.That(cache.Misses, Is.EqualTo(misses + 1), "the oldest entry was dropped, the newest kept");
    }

    [Test]
    public void Entry_found_in_the_old_generation_is_kept()
    {
        var cache = new RequirementCache(capacity: 4);
        RequirementExpression hot = cache.GetOrParse("k=hot");
        for (int i = 0; i < 20; i++)
        {
            // Touch the hot entry between inserts: every rotation finds it again and promotes it.
            cache.GetOrParse($"k=v{i}");
            Assert.That(cache.GetOrParse("k=hot"), Is.SameAs(hot));
        }
    }
}
