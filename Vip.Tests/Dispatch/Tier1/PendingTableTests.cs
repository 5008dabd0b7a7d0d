using Vip.Dispatch.Tier1;

namespace Vip.Tests.Dispatch.Tier1;

[Parallelizable(ParallelScope.All)]
public class PendingTableTests
{
    [Test]
    public void Slots_are_handed_out_lowest_first_and_reused_last_returned_first()
    {
        var table = new PendingTable(4);
        var a = table.TryRent()!;
        var b = table.TryRent()!;
        Assert.That((a.Index, b.Index), Is.EqualTo((0, 1)));
        Assert.That(table.InUse, Is.EqualTo(2));
        Assert.That(table.HighWater, Is.EqualTo(2));

        table.Return(a);
        Assert.That(table.TryRent(), Is.SameAs(a), "LIFO keeps the used part of the table dense");
        Assert.That(table.HighWater, Is.EqualTo(2));
    }

    [Test]
    public void A_full_table_refuses_and_takes_again_after_a_return()
    {
        var table = new PendingTable(3);
        var rented = Enumerable.Range(0, 3).Select(_ => table.TryRent()).ToArray();
        Assert.That(rented, Has.None.Null);
        Assert.That(rented.Select(s => s!.Index), Is.Unique);
        Assert.That(table.TryRent(), Is.Null);
        Assert.That(table.InUse, Is.EqualTo(3));

        table.Return(rented[1]!);
        Assert.That(table.TryRent(), Is.SameAs(rented[1]));
        Assert.That(table.TryRent(), Is.Null);
    }

    [Test]
    public void Threads_renting_and_returning_at_once_never_share_a_slot()
    {
        const int capacity = 64;
        const int threads = 4;
        const int rounds = 20_000;
        var table = new PendingTable(capacity);
        var owners = new int[capacity];
        var clashes = 0;
        var refused = 0;
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            var held = new Stack<PendingForward>();
            for (var i = 0; i < rounds; i++)
            {
                // Hold up to 20 slots per thread (80 wanted from 64), so the table runs full now and then.
                if (held.Count < 20 && (i % 3 != 2))
                {
                    var slot = table.TryRent();
                    if (slot is null)
                    {
                        Interlocked.Increment(ref refused);
                        continue;
                    }

                    if (Interlocked.Exchange(ref owners[slot.Index], t + 1) != 0)
                    {
                        Interlocked.Increment(ref clashes);
                    }

                    held.Push(slot);
                }
                else if (held.Count > 0)
                {
                    var slot = held.Pop();
                    Volatile.Write(ref owners[slot.Index], 0);
                    table.Return(slot);
                }
            }

            while (held.Count > 0)
            {
                var slot = held.Pop();
                Volatile.Write(ref owners[slot.Index], 0);
                table.Return(slot);
            }
        });

        Assert.That(clashes, Is.Zero, "a slot was handed to two holders at once");
        Assert.That(table.InUse, Is.Zero);
        Assert.That(table.HighWater, Is.LessThanOrEqualTo(capacity));
        var all = Enumerable.Range(0, capacity).Select(_ => table.TryRent()).ToArray();
        Assert.That(all, Has.None.Null, "every slot is free again");
        Assert.That(all.Select(s => s!.Index), Is.Unique);
        Assert.That(table.TryRent(), Is.Null);
    }
}
