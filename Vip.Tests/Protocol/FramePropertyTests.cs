using System.Buffers;
using CsCheck;
using Vip.Protocol;

namespace Vip.Tests.Protocol;

/// <summary>Random frames and random bytes: the parser only ever returns a frame, asks for more, or raises its protocol error.</summary>
public class FramePropertyTests
{
    private static readonly FrameReader Reader = new(new ProtocolLimits { MaxPayload = 4096 });

    private static void ParseAll(byte[] bytes, int[] cuts)
    {
        var seq = FrameSamples.Split(bytes, cuts);
        var consumed = seq.Start;
        var examined = seq.End;
        try
        {
            while (Reader.TryParse(seq, ref consumed, ref examined, out var frame))
            {
                FrameCodecTests.DecodeByType(frame);
            }
        }
        catch (VipProtocolException)
        {
            // the one documented outcome for bad input
        }
    }

    [Test]
    public void Random_bytes_only_produce_frames_requests_for_more_or_protocol_errors()
    {
        Gen.Select(Gen.Byte.Array[0, 300], Gen.Int[0, 300].Array[0, 4])
            .Sample((bytes, cuts) => ParseAll(bytes, cuts), iter: 20_000);
    }

    [Test]
    public void Random_payloads_behind_a_valid_header_only_produce_frames_or_protocol_errors()
    {
        var types = Enumerable.Range(0, 256).Where(t => FrameHeader.IsKnownType((byte)t)).Select(t => (byte)t).ToArray();
        Gen.Select(Gen.OneOfConst(types), Gen.Byte.Array[0, 200], Gen.Int[0, 220].Array[0, 3])
            .Sample((type, payload, cuts) =>
            {
                var w = new ArrayBufferWriter<byte>();
                FrameWriter.WriteRaw(w, (FrameType)type, 1, payload);
                ParseAll(w.WrittenSpan.ToArray(), cuts);
            }, iter: 20_000);
    }

    [Test]
    public void Mutated_valid_frames_only_produce_frames_or_protocol_errors()
    {
        var samples = FrameSamples.All().Select(s => s.Bytes).ToArray();
        Gen.Select(Gen.Int[0, samples.Length - 1], Gen.Int[0, 1000].Array[1, 4], Gen.Byte.Array[4])
            .Sample((which, positions, values) =>
            {
                var bytes = (byte[])samples[which].Clone();
                for (var i = 0; i < positions.Length; i++)
                {
                    bytes[positions[i] % bytes.Length] = values[i % values.Length];
                }

                ParseAll(bytes, []);
            }, iter: 20_000);
    }

    [Test]
    public void Random_tasks_round_trip()
    {
        var str = Gen.String[Gen.Char.AlphaNumeric, 1, 20];
        var attrs = Gen.Dictionary(str, Gen.String[Gen.Char.AlphaNumeric, 0, 20])[0, 10];
        Gen.Select(str, str, attrs, Gen.String[Gen.Char.AlphaNumeric, 0, 100], Gen.Byte.Array[0, 500])
            .Sample((client, kind, a, req, body) =>
            {
                var task = new TaskRequest(client, kind, a.ToArray(), req, body);
                var bytes = FrameSamples.Encode(3, task);
                var back = TaskRequest.Read(bytes.AsSpan(FrameHeader.Size));
                return back.ClientId == client && back.Kind == kind && back.Requirement == req
                    && back.Attributes.SequenceEqual(task.Attributes) && back.Body.Span.SequenceEqual(body);
            }, iter: 2_000);
    }
}
