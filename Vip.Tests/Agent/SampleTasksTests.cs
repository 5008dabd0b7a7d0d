using System.Text;
using Vip.Agent;

namespace Vip.Tests.Agent;

public class SampleTasksTests
{
    private static readonly SampleTaskOptions Options = new();

    private static Task<SampleTaskOutcome> Run(string kind, string body, params (string, string)[] attrs)
        => SampleTasks.RunAsync(kind, attrs.Select(a => KeyValuePair.Create(a.Item1, a.Item2)).ToList(), Encoding.UTF8.GetBytes(body), Options, CancellationToken.None).AsTask();

    [TestCase(0, 0)]
    [TestCase(1, 0)]
    [TestCase(2, 1)]
    [TestCase(3, 2)]
    [TestCase(10, 4)]
    [TestCase(100, 25)]
    [TestCase(65_537, 6543)]
    [TestCase(1_000_000, 78_498)]
    [TestCase(10_000_000, 664_579)]
    public void Prime_counts_match_the_known_values(long n, long expected)
        => Assert.That(SampleTasks.CountPrimes(n), Is.EqualTo(expected));

    [Test]
    public void Prime_count_agrees_with_trial_division_around_segment_edges()
    {
        // 65,536 odd numbers per segment: check n across the first boundaries.
        var isPrime = new List<long>();
        long count = 0;
        for (long n = 0; n <= 140_000; n++)
        {
            if (n >= 2 && IsPrime(n))
            {
                count++;
            }

            if (n % 977 == 0 || n is 65_537 or 65_538 or 131_073 or 131_074)
            {
                Assert.That(SampleTasks.CountPrimes(n), Is.EqualTo(count), $"n = {n}");
            }
        }

        static bool IsPrime(long n)
        {
            for (long d = 2; d * d <= n; d++)
            {
                if (n % d == 0)
                {
                    return false;
                }
            }

            return true;
        }
    }

    [Test]
    public async Task Sha256_is_the_hex_of_the_body_hash()
    {
        var r = await Run("sha256", "abc");
        Assert.That(r.Status, Is.EqualTo(SampleTaskStatus.Ok));
        Assert.That(r.Text, Is.EqualTo("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
        Assert.That((await Run("sha256", "")).Text, Is.EqualTo("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    }

    [Test]
    public async Task Primes_reads_n_from_the_body_or_the_attribute()
    {
        Assert.That((await Run("primes", "1000")).Text, Is.EqualTo("168"));
        Assert.That((await Run("primes", "", ("n", "1000"))).Text, Is.EqualTo("168"));
        Assert.That((await Run("primes", " 30\n")).Text, Is.EqualTo("10"));
    }

    [Test]
    public async Task Bad_or_oversized_arguments_are_refused_with_a_reason()
    {
        var noArg = await Run("primes", "");
        var notNumber = await Run("primes", "ten");
        var negative = await Run("primes", "", ("n", "-5"));
        var tooBig = await Run("primes", "999999999999");
        var longSleep = await Run("sleep", "3600000");
        Assert.Multiple(() =>
        {
            Assert.That(noArg.Status, Is.EqualTo(SampleTaskStatus.BadArgument));
            Assert.That(notNumber.Status, Is.EqualTo(SampleTaskStatus.BadArgument));
            Assert.That(negative.Status, Is.EqualTo(SampleTaskStatus.BadArgument));
            Assert.That(tooBig.Status, Is.EqualTo(SampleTaskStatus.BadArgument));
            Assert.That(tooBig.Text, Does.Contain("cap"));
            Assert.That(longSleep.Status, Is.EqualTo(SampleTaskStatus.BadArgument));
        });
    }

    [Test]
    public async Task Echo_returns_the_body_and_sleep_returns_its_milliseconds()
    {
        Assert.That((await Run("echo", "héllo")).Text, Is.EqualTo("héllo"));
        Assert.That((await Run("sleep", "", ("ms", "20"))).Text, Is.EqualTo("20"));
    }

    [Test]
    public async Task Unknown_kind_says_which_kinds_exist()
    {
        var r = await Run("fft", "");
        Assert.That(r.Status, Is.EqualTo(SampleTaskStatus.UnknownKind));
        Assert.That(r.Text, Does.Contain("sha256"));
    }

    [Test]
    public void Sleep_honours_cancellation()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        Assert.That(async () => await SampleTasks.RunAsync("sleep", [], Encoding.UTF8.GetBytes("5000"), Options, cts.Token),
            Throws.InstanceOf<OperationCanceledException>());
    }
}
