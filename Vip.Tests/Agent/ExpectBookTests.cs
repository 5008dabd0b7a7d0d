using Microsoft.Extensions.Time.Testing;
using Vip.Agent;
using Vip.Protocol;

namespace Vip.Tests.Agent;

public class ExpectBookTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 28, 0, 0, 0, TimeSpan.Zero);

    private static ExpectNotice Notice(ulong id, FakeTimeProvider time, TimeSpan lifetime)
        => new(id, WireEndpoint.From(System.Net.IPAddress.Loopback, 1), (time.GetUtcNow() + lifetime).ToUnixTimeMilliseconds(), "echo", []);

    [Test]
    public void Count_follows_adds_removals_repeats_and_purges()
    {
        var time = new FakeTimeProvider(Start);
        var book = new ExpectBook(100, time);
        for (ulong i = 1; i <= 10; i++)
        {
            Assert.That(book.Add(Notice(i, time, TimeSpan.FromSeconds(i <= 4 ? 1 : 60))), Is.True);
        }

        Assert.That(book.Add(Notice(3, time, TimeSpan.FromSeconds(1))), Is.True, "the same ticket again");
        Assert.That(book.Count, Is.EqualTo(10));
        book.Remove(10);
        book.Remove(10);
        Assert.That(book.Count, Is.EqualTo(9));
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.That(book.Purge(), Is.EqualTo(4));
        Assert.That(book.Count, Is.EqualTo(5));
    }

    [Test]
    public void A_full_book_makes_room_from_expired_notices_and_refuses_when_none_expired()
    {
        var time = new FakeTimeProvider(Start);
        var book = new ExpectBook(4, time);
        for (ulong i = 1; i <= 4; i++)
        {
            book.Add(Notice(i, time, TimeSpan.FromSeconds(1)));
        }

        Assert.That(book.Add(Notice(5, time, TimeSpan.FromSeconds(60))), Is.False, "full of unexpired notices");
        Assert.That(book.Dropped, Is.EqualTo(1));

        time.Advance(TimeSpan.FromSeconds(2)); // the four expire; the full-book purge may run again
        Assert.That(book.Add(Notice(6, time, TimeSpan.FromSeconds(60))), Is.True);
        Assert.That(book.Count, Is.EqualTo(1));
        Assert.That(book.TryGet(6, out _), Is.True);
    }

    [Test]
    public async Task A_waiting_claim_gets_the_notice_that_arrives_after_it()
    {
        var time = new FakeTimeProvider(Start);
        var book = new ExpectBook(100, time);
        var waiting = book.WaitAsync(7, TimeSpan.FromSeconds(5), CancellationToken.None).AsTask();
        Assert.That(waiting.IsCompleted, Is.False);

        book.Add(Notice(7, time, TimeSpan.FromSeconds(30)));

        var notice = await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(notice!.TicketId, Is.EqualTo(7UL));
    }
}
