using System.Net;
using CsCheck;
using Microsoft.Extensions.Time.Testing;
using Vip.Selection;

namespace Vip.Tests.Selection;

/// <summary>Random inputs: the parser never fails any other way, and the indexed selector agrees with the reference semantics.</summary>
public class SelectionPropertyTests
{
    private static readonly Gen<string> Key = Gen.OneOfConst("a", "b", "c", "n");
    private static readonly Gen<string> Value = Gen.OneOfConst("x", "y", "z", "1", "2", "3", "1.5", "-2");
    private static readonly Gen<string> Number = Gen.OneOfConst("0", "1", "2", "2.5", "-1");

    private static readonly Gen<string> Term = Gen.OneOf(
        Gen.Select(Key, Value, (k, v) => $"{k}={v}"),
        Gen.Select(Key, Value, (k, v) => $"{k} != {v}"),
        Gen.Select(Key, Value.Array[1, 3], (k, vs) => $"{k} in ({string.Join(",", vs)})"),
        Gen.Select(Key, Value.Array[1, 3], (k, vs) => $"{k} notin ( {string.Join(" , ", vs)} )"),
        Key,
        Key.Select(k => "!" + k),
        Gen.Select(Key, Gen.OneOfConst(">", ">=", "<", "<="), Number, (k, o, n) => $"{k}{o}{n}"));

    private static readonly Gen<string> Requirement =
        Gen.Select(Term, Gen.Int[0, 3], (t, w) => w == 0 ? t : $"{t}:{w * 10}").Array[0, 5].Select(a => string.Join(", ", a));

    [Test]
    public void Parser_returns_an_expression_or_its_syntax_exception_for_any_input()
    {
        Gen<string> noise = Gen.OneOf(
            Gen.Char["ab=!<>,():: \t019.-_\u00e9\u0000\""].Array[0, 60].Select(a => new string(a)),
            Gen.Char.Array[0, 30].Select(a => new string(a)),
            Gen.OneOfConst("in", "notin", " ", ",", "(", ")", "a", "=", "!", ">=", ":", "5", "b").Array[0, 30].Select(a => string.Concat(a)));

        noise.Sample(text =>
        {
            try
            {
                RequirementExpression e = RequirementParser.Parse(text, new RequirementLimits { MaxLength = 50, MaxTerms = 4, MaxListItems = 3 });
                Assert.That(e.Terms.Length, Is.LessThanOrEqualTo(4));
            }
            catch (RequirementSyntaxException ex)
            {
                Assert.That(ex.Position, Is.InRange(0, text.Length));
                Assert.That(ex.Message, Does.EndWith($" at {ex.Position}"));
            }
        }, iter: 3000);
    }

    [Test]
    public void Valid_requirements_parse_and_their_canonical_form_parses_to_the_same()
    {
        Requirement.Sample(text =>
        {
            RequirementExpression e = RequirementParser.Parse(text);
            RequirementExpression again = RequirementParser.Parse(e.ToString());
            Assert.That(again.ToString(), Is.EqualTo(e.ToString()));
        }, iter: 500);
    }

    private sealed record FakeServer(Dictionary<string, string> Attributes, int State, int Capacity, int Active);

    private static readonly Gen<FakeServer> Server = Gen.Select(
        Gen.Select(Key, Value).Array[0, 4],
        Gen.OneOfConst<string?>(null, "gold", "silver"),
        Gen.OneOfConst<string?>(null, "echo", "sha256", "echo,sha256"),
        Gen.Select(Gen.Int[0, 2], Gen.Int[1, 3], Gen.Int[0, 3]),
        (pairs, pool, kinds, s) =>
        {
            var attrs = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach ((string k, string v) in pairs)
            {
                attrs[k] = v;
            }

            if (pool is not null)
            {
                attrs["pool"] = pool;
            }

            if (kinds is not null)
            {
                attrs["kinds"] = kinds;
            }

            return new FakeServer(attrs, s.Item1, s.Item2, s.Item3);
        });

    private sealed record Case(FakeServer[] Servers, string Requirement, string? ClientPool, string? TaskPool, string Kind, bool Reserved, int Policy);

    private static readonly Gen<Case> Cases = Gen.Select(
        Server.Array[1, 9],
        Requirement,
        Gen.Select(Gen.OneOfConst<string?>(null, "gold", "silver"), Gen.OneOfConst<string?>(null, null, "gold")),
        Gen.OneOfConst("echo", "sha256", "sleep"),
        Gen.Select(Gen.Bool, Gen.Int[0, 3]),
        (servers, requirement, pools, kind, flags) => new Case(servers, requirement, pools.Item1, pools.Item2, kind, flags.Item1, flags.Item2));

    [Test]
    public void Indexed_selection_keeps_exactly_the_servers_the_reference_semantics_keep()
    {
        Cases.Sample(c =>
        {
            var options = new SelectionOptions
            {
                PublishDelay = TimeSpan.Zero,
                BindingKeys = ["pool"],
                ReservedBindings = c.Reserved,
                MaxAlternatives = 8,
                Policy = (SelectionPolicy)c.Policy,
            };
            var time = new FakeTimeProvider();
            using var engine = new SelectionEngine(options, time, new Random(1));
            for (int i = 0; i < c.Servers.Length; i++)
            {
                FakeServer s = c.Servers[i];
                string id = $"s{i}";
                engine.Register(new ServerRegistration(id, new IPEndPoint(IPAddress.Loopback, 9000 + i), s.Capacity, s.Attributes), s.State == 0 ? ServerState.Unknown : ServerState.Up);
                if (s.State != 0)
                {
                    engine.Heartbeat(id, new ServerHeartbeat(0, s.Active, s.State == 2));
                }
            }

            if (c.ClientPool is not null)
            {
                engine.SetClient(new ClientRecord("c", new Dictionary<string, string> { ["pool"] = c.ClientPool }));
            }

            Dictionary<string, string> task = c.TaskPool is null ? [] : new() { ["pool"] = c.TaskPool };
            SelectionExplanation e = engine.Explain(SelectionRequest.Create("c", IPAddress.Loopback, c.Kind, task, c.Requirement));

            // Reference: the parsed terms evaluated on each server's attribute dictionary, plus bindings and state.
            RequirementExpression expression = RequirementParser.Parse(c.Requirement);
            var expected = new List<string>();
            bool full = false;
            for (int i = 0; i < c.Servers.Length; i++)
            {
                FakeServer s = c.Servers[i];
                s.Attributes.TryGetValue("pool", out string? pool);
                bool bound = c.ClientPool is not null ? pool == c.ClientPool : !c.Reserved || pool is null;
                bound &= c.TaskPool is null || pool == c.TaskPool;
                bool kindOk = !s.Attributes.TryGetValue("kinds", out string? kinds) || kinds.Split(',').Contains(c.Kind);
                if (!bound || !kindOk || !expression.Matches(s.Attributes) || s.State != 1)
                {
                    continue;
                }

                if (s.Active >= s.Capacity)
                {
                    full = true;
                    continue;
                }

                expected.Add($"s{i}");
            }

            string[] kept = [.. e.Servers.Where(v => v.Kept).Select(v => v.Server.Id)];
            string[] ranked = [.. e.Servers.Where(v => v.Rank >= 0).Select(v => v.Server.Id)];
            Assert.That(kept, Is.EqualTo(expected), "explain's reference verdicts");
            Assert.That(ranked, Is.EqualTo(expected), "the indexed selector's candidates");
            Assert.That(e.Outcome, Is.EqualTo(expected.Count > 0 ? SelectionOutcome.Selected : full ? SelectionOutcome.Overloaded : SelectionOutcome.NoMatchingServer));
        }, iter: 600);
    }
}
