using Vip.Fuzz;
using Vip.Protocol;
using Vip.Tests.Reliability.Harness;

namespace Vip.Tests.Reliability;

/// <summary>
/// Every file of the fuzz corpora (fuzz/corpus/TARGET/, seeds plus every input a fuzzer ever crashed on) replayed
/// through the same target code the fuzzer runs: the parser must return a result, ask for more, or raise its
/// documented exception — no other exception, no broken invariant, no hang.
/// </summary>
[TestFixture]
public class CorpusReplayTests
{
    private static readonly TimeSpan PerInputDeadline = TimeSpan.FromSeconds(5);

    public static IEnumerable<TestCaseData> CorpusFiles()
    {
        foreach (var target in FuzzTargets.Names)
        {
            var dir = Path.Combine(RepoPaths.Corpus, target);
            if (!Directory.Exists(dir))
            {
                continue;
            }

            foreach (var file in Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal))
            {
                yield return new TestCaseData(target, Path.GetFileName(file)).SetName($"Corpus_{target}_{Path.GetFileName(file)}");
            }
        }
    }

    [TestCaseSource(nameof(CorpusFiles))]
    public void Corpus_input_is_parsed_asked_for_more_or_rejected_with_the_documented_error(string target, string name)
    {
        var bytes = File.ReadAllBytes(Path.Combine(RepoPaths.Corpus, target, name));
        var run = Task.Run(() => FuzzTargets.Run(target, bytes));
        Assert.That(run.Wait(PerInputDeadline), Is.True, $"{target}/{name} did not finish within {PerInputDeadline.TotalSeconds} s");
        if (name.StartsWith("valid-", StringComparison.Ordinal))
        {
            Assert.That(run.Result, Is.EqualTo(FuzzOutcome.Accepted), $"{target}/{name} is a valid input");
        }
    }

    [Test]
    public void Every_fuzz_target_has_a_committed_corpus()
    {
        foreach (var target in FuzzTargets.Names)
        {
            var dir = Path.Combine(RepoPaths.Corpus, target);
            Assert.That(Directory.Exists(dir) && Directory.EnumerateFiles(dir).Any(), Is.True, $"fuzz/corpus/{target} is missing or empty");
        }
    }

    [Test]
    public void The_committed_corpus_holds_every_seed_the_generator_writes()
    {
        // When Seeds.cs changes, regenerate: dotnet fuzz/work/bin/Vip.Fuzz.dll seed fuzz/corpus
        foreach (var (target, name, bytes) in Seeds.All())
        {
            var path = Path.Combine(RepoPaths.Corpus, target, name);
            Assert.That(File.Exists(path), Is.True, $"seed {target}/{name} is not committed");
            Assert.That(File.ReadAllBytes(path), Is.EqualTo(bytes), $"seed {target}/{name} differs from Seeds.cs");
        }
    }

    [Test]
    public void The_frame_corpus_has_a_valid_frame_of_every_type()
    {
        var seen = new HashSet<FrameType>();
        foreach (var file in Directory.EnumerateFiles(Path.Combine(RepoPaths.Corpus, "frame"), "valid-*"))
        {
            var bytes = new System.Buffers.ReadOnlySequence<byte>(File.ReadAllBytes(file).AsMemory(1));
            var reader = new FrameReader(new ProtocolLimits { MaxPayload = FuzzTargets.FrameMaxPayload });
            var consumed = bytes.Start;
            var examined = bytes.End;
            while (reader.TryParse(bytes, ref consumed, ref examined, out var frame))
            {
                seen.Add(frame.Type);
            }
        }

        Assert.That(seen, Is.SupersetOf(Enum.GetValues<FrameType>()));
    }

    [Test]
    public void Known_inputs_get_their_expected_outcomes()
    {
        var ping = File.ReadAllBytes(Path.Combine(RepoPaths.Corpus, "frame", "valid-ping"));
        byte[] twoPings = [0, .. ping.AsSpan(1), .. ping.AsSpan(1)];
        Assert.Multiple(() =>
        {
            Assert.That(FuzzTargets.Run("frame", twoPings), Is.EqualTo(FuzzOutcome.Accepted), "two frames in a stream");
            Assert.That(FuzzTargets.Run("frame", Read("frame", "trailing-byte")), Is.EqualTo(FuzzOutcome.Rejected));
            Assert.That(FuzzTargets.Run("frame", Read("frame", "too-large-max")), Is.EqualTo(FuzzOutcome.Rejected));
            Assert.That(FuzzTargets.Run("frame", Read("frame", "partial-header")), Is.EqualTo(FuzzOutcome.NeedMore));
            Assert.That(FuzzTargets.Run("proxy", Read("proxy", "truncated-fixed")), Is.EqualTo(FuzzOutcome.NeedMore));
            Assert.That(FuzzTargets.Run("proxy", Read("proxy", "length-over-cap")), Is.EqualTo(FuzzOutcome.Rejected));
            Assert.That(FuzzTargets.Run("proxy", Read("proxy", "proxy-v1-text")), Is.EqualTo(FuzzOutcome.Rejected));
        });
    }

    private static byte[] Read(string target, string name) => File.ReadAllBytes(Path.Combine(RepoPaths.Corpus, target, name));
}
