using Vip.Selection;

namespace Vip.Tests.Selection;

public class RequirementParserTests
{
    [TestCase("region=eu", RequirementOperator.Equal, "region", "eu")]
    [TestCase("region!=eu", RequirementOperator.NotEqual, "region", "eu")]
    [TestCase("tier in (gold,silver)", RequirementOperator.In, "tier", "gold,silver")]
    [TestCase("tier notin (gold,silver)", RequirementOperator.NotIn, "tier", "gold,silver")]
    [TestCase("gpu", RequirementOperator.Exists, "gpu", "")]
    [TestCase("!gpu", RequirementOperator.Absent, "gpu", "")]
    [TestCase("cores>8", RequirementOperator.GreaterThan, "cores", "8")]
    [TestCase("cores>=8", RequirementOperator.GreaterOrEqual, "cores", "8")]
    [TestCase("cores<8.5", RequirementOperator.LessThan, "cores", "8.5")]
    [TestCase("cores<=-2", RequirementOperator.LessOrEqual, "cores", "-2")]
    public void Each_operator_parses_to_its_term(string text, RequirementOperator op, string key, string values)
    {
        RequirementExpression e = RequirementParser.Parse(text);

        Assert.That(e.Terms, Has.Length.EqualTo(1));
        RequirementTerm t = e.Terms[0];
        Assert.Multiple(() =>
        {
            Assert.That(t.Operator, Is.EqualTo(op));
            Assert.That(t.Key, Is.EqualTo(key));
            Assert.That(string.Join(",", t.Values), Is.EqualTo(values));
            Assert.That(t.IsPreference, Is.False);
            Assert.That(e.FilterCount, Is.EqualTo(1));
        });
    }

    [Test]
    public void Numeric_operand_is_parsed_as_a_number()
    {
        Assert.That(RequirementParser.Parse("mem>=16.5").Terms[0].Number, Is.EqualTo(16.5));
    }

    [Test]
    public void Whitespace_is_tolerated_around_every_token()
    {
        RequirementExpression e = RequirementParser.Parse("  region = eu ,\ttier  in  ( gold , silver ) ,  ! gpu , cores >= 8 : 20 , ssd :5  ");

        Assert.That(e.ToString(), Is.EqualTo("region=eu, tier in (gold,silver), !gpu, cores>=8:20, ssd:5"));
        Assert.That(e.FilterCount, Is.EqualTo(3));
        Assert.That(e.PreferenceCount, Is.EqualTo(2));
    }

    [Test]
    public void A_term_with_a_weight_is_a_preference()
    {
        RequirementTerm t = RequirementParser.Parse("region=eu:50").Terms[0];

        Assert.That(t.IsPreference, Is.True);
        Assert.That(t.Weight, Is.EqualTo(50));
    }

    [Test]
    public void Keywords_are_case_insensitive_and_keys_may_be_named_like_them()
    {
        RequirementExpression e = RequirementParser.Parse("in IN (a), notin NotIn (b)");

        Assert.That(e.Terms[0].Key, Is.EqualTo("in"));
        Assert.That(e.Terms[0].Operator, Is.EqualTo(RequirementOperator.In));
        Assert.That(e.Terms[1].Key, Is.EqualTo("notin"));
        Assert.That(e.Terms[1].Operator, Is.EqualTo(RequirementOperator.NotIn));
    }

    [TestCase("")]
    [TestCase("   ")]
    public void Empty_requirement_has_no_terms(string text)
    {
        Assert.That(RequirementParser.Parse(text).Terms, Is.Empty);
    }

    [TestCase("tier in (a, b", 13, "expected ')'")]
    [TestCase("tier in (a b)", 11, "expected ')'")]
    [TestCase("region=", 7, "expected a value")]
    [TestCase("region=eu,", 10, "expected a key")]
    [TestCase(",region=eu", 0, "expected a key, found ','")]
    [TestCase("region=eu tier=gold", 10, "expected ',' or end of requirement")]
    [TestCase("gpu tier=gold", 4, "expected 'in', 'notin', an operator, ',' or end of requirement")]
    [TestCase("region=eu;", 9, "expected ',' or end of requirement")]
    [TestCase("cores>=eight", 7, "expected a number")]
    [TestCase("cores>1e9", 6, "expected a number")]
    [TestCase("region!eu", 7, "expected '='")]
    [TestCase("tier in gold", 8, "expected '('")]
    [TestCase("tier in ()", 9, "expected a value, found ')'")]
    [TestCase("region=eu:", 10, "expected a weight")]
    [TestCase("region=eu:0", 10, "weight must be 1 to 1000")]
    [TestCase("region=eu:1001", 10, "weight must be 1 to 1000")]
    [TestCase("region=eu:99999999999999999999", 10, "weight must be 1 to 1000")]
    [TestCase("région=eu", 1, "expected ',' or end of requirement")]
    [TestCase("region=\"eu\"", 7, "expected a value, found '\"'")]
    [TestCase("!", 1, "expected a key")]
    public void Syntax_errors_say_what_was_expected_and_where(string text, int position, string reason)
    {
        var ex = Assert.Throws<RequirementSyntaxException>(() => RequirementParser.Parse(text));

        Assert.That(ex!.Position, Is.EqualTo(position));
        Assert.That(ex.Reason, Is.EqualTo(reason));
        Assert.That(ex.Message, Is.EqualTo($"{reason} at {position}"));
    }

    [Test]
    public void Control_characters_are_reported_by_code_point()
    {
        var ex = Assert.Throws<RequirementSyntaxException>(() => RequirementParser.Parse("a=\u0001"));

        Assert.That(ex!.Message, Is.EqualTo("expected a value, found U+0001 at 2"));
    }

    [Test]
    public void Requirement_longer_than_the_cap_is_refused_at_the_cap()
    {
        var limits = new RequirementLimits { MaxLength = 20 };

        var ex = Assert.Throws<RequirementSyntaxException>(() => RequirementParser.Parse(new string('a', 21), limits));

        Assert.That(ex!.Message, Is.EqualTo("requirement longer than 20 characters at 20"));
        Assert.That(RequirementParser.Parse(new string('a', 20), limits).Terms, Has.Length.EqualTo(1));
    }

    [Test]
    public void More_terms_than_the_cap_are_refused_at_the_first_extra_term()
    {
        var limits = new RequirementLimits { MaxTerms = 3 };

        var ex = Assert.Throws<RequirementSyntaxException>(() => RequirementParser.Parse("a,b,c,d", limits));

        Assert.That(ex!.Message, Is.EqualTo("more than 3 terms at 6"));
        Assert.That(RequirementParser.Parse("a,b,c", limits).Terms, Has.Length.EqualTo(3));
    }

    [Test]
    public void More_list_items_than_the_cap_are_refused_at_the_first_extra_item()
    {
        var limits = new RequirementLimits { MaxListItems = 2 };

        var ex = Assert.Throws<RequirementSyntaxException>(() => RequirementParser.Parse("k in (a,b,c)", limits));

        Assert.That(ex!.Message, Is.EqualTo("more than 2 list items at 10"));
    }

    [Test]
    public void Default_caps_are_1024_characters_32_terms_and_16_items()
    {
        Assert.Multiple(() =>
        {
            Assert.That(RequirementLimits.Default.MaxLength, Is.EqualTo(1024));
            Assert.That(RequirementLimits.Default.MaxTerms, Is.EqualTo(32));
            Assert.That(RequirementLimits.Default.MaxListItems, Is.EqualTo(16));
        });
        string terms32 = string.Join(",", Enumerable.Range(0, 32).Select(i => $"k{i}"));
        Assert.That(RequirementParser.Parse(terms32).Terms, Has.Length.EqualTo(32));
        Assert.Throws<RequirementSyntaxException>(() => RequirementParser.Parse(terms32 + ",k32"));
        string items16 = "k in (" + string.Join(",", Enumerable.Range(0, 16)) + ")";
        Assert.That(RequirementParser.Parse(items16).Terms[0].Values, Has.Length.EqualTo(16));
        Assert.Throws<RequirementSyntaxException>(() => RequirementParser.Parse(items16.Replace(")", ",16)", StringComparison.Ordinal)));
    }

    [Test]
    public void TryParse_reports_the_error_without_throwing()
    {
        bool ok = RequirementParser.TryParse("a in (b", null, out RequirementExpression? e, out RequirementSyntaxException? error);

        Assert.That(ok, Is.False);
        Assert.That(e, Is.Null);
        Assert.That(error!.Message, Is.EqualTo("expected ')' at 7"));
    }

    [Test]
    public void Canonical_text_parses_back_to_the_same_terms()
    {
        RequirementExpression e = RequirementParser.Parse("a=1 ,b!=x:3, c in(p,q), d notin (r) , e, !f:7, g>1, h>=2, i<3, j<=4");

        RequirementExpression again = RequirementParser.Parse(e.ToString());

        Assert.That(again.ToString(), Is.EqualTo(e.ToString()));
        Assert.That(again.Terms.Select(t => (t.Key, t.Operator, t.Weight)), Is.EqualTo(e.Terms.Select(t => (t.Key, t.Operator, t.Weight))));
    }

    [Test]
    public void Reference_semantics_treat_a_missing_key_as_not_equal_and_not_in()
    {
        var server = new Dictionary<string, string> { ["region"] = "eu", ["cores"] = "8", ["name"] = "x" };

        Assert.Multiple(() =>
        {
            Assert.That(RequirementParser.Parse("zone!=a").Matches(server), Is.True);
            Assert.That(RequirementParser.Parse("zone notin (a)").Matches(server), Is.True);
            Assert.That(RequirementParser.Parse("zone=a").Matches(server), Is.False);
            Assert.That(RequirementParser.Parse("cores>=8.0").Matches(server), Is.True);
            Assert.That(RequirementParser.Parse("cores=8.0").Matches(server), Is.False, "= compares text, not numbers");
            Assert.That(RequirementParser.Parse("name>1").Matches(server), Is.False, "a non-numeric value fails numeric terms");
            Assert.That(RequirementParser.Parse("name<1").Matches(server), Is.False);
            Assert.That(RequirementParser.Parse("Region=eu").Matches(server), Is.False, "keys are case-sensitive");
        });
    }
}
