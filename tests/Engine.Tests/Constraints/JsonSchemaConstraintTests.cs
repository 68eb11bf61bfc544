using System.Text;
using Json.Schema;
using Serving.Contracts.Generation;
using Serving.Engine.Constraints;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;

namespace Serving.Engine.Tests.Constraints;

/// <summary>JSON Schema constraints: every walk's output validates with an independent validator (JsonSchema.Net, formats asserted).</summary>
public sealed class JsonSchemaConstraintTests(Gpt2TokenizerFixture gpt2) : IClassFixture<Gpt2TokenizerFixture>
{
    public static TheoryData<string> SchemaNames => [.. ExtractionSchemas.Valid.Select(s => s.Name)];

    public static TheoryData<string, string, string> RefusedSchemas
    {
        get
        {
            var data = new TheoryData<string, string, string>();
            foreach (var (schema, path, problem) in ExtractionSchemas.Refused)
                data.Add(schema, path, problem);
            return data;
        }
    }

    private TokenConstraintCompiler NewCompiler() => new(gpt2.Tokenizer, gpt2.Tokenizer.VocabSize);

    [Theory]
    [MemberData(nameof(SchemaNames))]
    public void Walk_ExtractionSchema_EveryOutputValidates(string name)
    {
        string schemaText = ExtractionSchemas.Valid.Single(s => s.Name == name).Schema;
        var constraint = NewCompiler().Compile(OutputConstraint.JsonSchema(schemaText));
        var validator = JsonSchema.FromText(schemaText);
        var options = new EvaluationOptions { RequireFormatValidation = true, OutputFormat = OutputFormat.List };
        var random = new Random(name.Length);
        for (int i = 0; i < 25; i++)
        {
            var (output, complete) = ConstraintWalker.Walk(constraint, gpt2.Tokenizer, random, maxTokens: 20_000);
            Assert.True(complete);
            string text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(output);
            using var document = System.Text.Json.JsonDocument.Parse(text);
            var result = validator.Evaluate(document.RootElement, options);
            Assert.True(result.IsValid, $"{text}\n{string.Join("\n", result.Details?.Where(d => d.Errors is not null).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}")) ?? [])}");
        }
    }

    [Theory]
    [InlineData("{\"start\":\"2024-02-30T10:00:00Z\",\"end\":\"2024-03-01T10:00:00Z\",\"timezone\":\"Europe/Paris\",\"reminder_minutes\":5}")]
    [InlineData("{\"start\":\"2024-02-03T10:00:00Z\",\"end\":\"2024-03-01T10:00:00Z\",\"timezone\":\"Europe/Paris\",\"reminder_minutes\":1441}")]
    [InlineData("{\"start\":\"2024-02-03T10:00:00Z\",\"end\":\"2024-03-01T10:00:00Z\",\"timezone\":\"Europe/Paris\",\"reminder_minutes\":5,\"x\":1}")]
    public void Validator_InvalidAppointment_Rejects(string text)
    {
        // The independent check can fail: a bad date, an out-of-range integer and an extra property are all caught.
        var validator = JsonSchema.FromText(ExtractionSchemas.Valid.Single(s => s.Name == "appointment").Schema);
        using var document = System.Text.Json.JsonDocument.Parse(text);
        Assert.False(validator.Evaluate(document.RootElement, new EvaluationOptions { RequireFormatValidation = true }).IsValid);
        Assert.False(NewCompiler().Compile(OutputConstraint.JsonSchema(ExtractionSchemas.Valid.Single(s => s.Name == "appointment").Schema)).Matches(text));
    }

    [Theory]
    [MemberData(nameof(RefusedSchemas))]
    public void Compile_UnsupportedOrMalformedSchema_NamesPathAndProblem(string schema, string path, string problem)
    {
        var ex = Assert.Throws<ConstraintException>(() => NewCompiler().Compile(OutputConstraint.JsonSchema(schema)));
        Assert.Equal(path, ex.Path);
        Assert.Contains(problem, ex.Problem);
    }

    [Fact]
    public void Walk_WhitespacePattern_ValidJsonWithTheWhitespaceBetweenTokens()
    {
        string schema = ExtractionSchemas.Valid.Single(s => s.Name == "triage").Schema;
        var constraint = NewCompiler().Compile(OutputConstraint.JsonSchema(schema) with { WhitespacePattern = "[ \\n]{0,2}" });
        Assert.True(constraint.Matches("{ \"kind\": \"triage\",\n\"priority\" :3,\"department\":\"oncology\"  }"));
        Assert.False(constraint.Matches("{   \"kind\":\"triage\",\"priority\":3,\"department\":\"oncology\"}"));   // three spaces
        Assert.False(constraint.Matches(" {\"kind\":\"triage\",\"priority\":3,\"department\":\"oncology\"}"));   // not outside the value
        var validator = JsonSchema.FromText(schema);
        var random = new Random(5);
        int spaced = 0;
        for (int i = 0; i < 20; i++)
        {
            var (output, complete) = ConstraintWalker.Walk(constraint, gpt2.Tokenizer, random, maxTokens: 5000);
            Assert.True(complete);
            string text = Encoding.UTF8.GetString(output);
            using var document = System.Text.Json.JsonDocument.Parse(text);
            Assert.True(validator.Evaluate(document.RootElement).IsValid, text);
            spaced += text.Contains(' ') || text.Contains('\n') ? 1 : 0;
        }

        Assert.True(spaced > 0);
    }

    [Theory]
    [InlineData("[ a]*", "JSON whitespace")]
    [InlineData("(x", "missing ')'")]
    public void Compile_BadWhitespacePattern_Refused(string pattern, string problem)
    {
        var ex = Assert.Throws<ConstraintException>(() => NewCompiler().Compile(OutputConstraint.JsonObject() with { WhitespacePattern = pattern }));
        Assert.StartsWith("whitespace_pattern", ex.Path);
        Assert.Contains(problem, ex.Problem);
        Assert.Throws<ConstraintException>(() => NewCompiler().Compile(OutputConstraint.Regex("a") with { WhitespacePattern = " " }));
    }

    [Theory]
    [InlineData("""{"type":"array","maxItems":1000,"items":{"type":"string","maxLength":10000}}""")]
    [InlineData("""{"type":"array","maxItems":1000,"items":{"type":"array","maxItems":1000,"items":{"type":"integer"}}}""")]
    public void Compile_SchemaExpandingPastTheStateBudget_RefusedNamingTheLimit(string schema)
    {
        var ex = Assert.Throws<ConstraintException>(() => NewCompiler().Compile(OutputConstraint.JsonSchema(schema)));
        Assert.Contains("automaton states", ex.Problem);
    }

    [Fact]
    public void Walk_JsonObject_OutputIsAnObject()
    {
        var constraint = NewCompiler().Compile(OutputConstraint.JsonObject());
        Assert.False(constraint.Matches("[]"));
        Assert.False(constraint.Matches("{\"a\": 1}"));                  // compact: no whitespace
        Assert.True(constraint.Matches("{\"a\":[1,{\"b\":null}],\"c\":\"x\"}"));
        Assert.True(constraint.Matches("{}"));
    }

    [Fact]
    public void Matches_JsonObjectNestedDeep_AnyDepth()
    {
        var constraint = NewCompiler().Compile(OutputConstraint.JsonObject());
        string objects = string.Concat(Enumerable.Repeat("{\"a\":", 100)) + "1" + new string('}', 100);
        string arrays = "{\"b\":" + new string('[', 200) + "null" + new string(']', 200) + "}";

        Assert.True(constraint.Matches(objects));
        Assert.True(constraint.Matches(arrays));
        Assert.False(constraint.Matches(objects[..^1]));
        Assert.False(constraint.Matches(arrays.Replace("]]}", "]}")));
    }

    [Fact]
    public void Matches_RecursiveReference_AnyDepthAndStillValidated()
    {
        const string tree = """
            {"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},
              "required":["v"],"additionalProperties":false}},
             "$ref":"#/$defs/node"}
            """;
        var constraint = NewCompiler().Compile(OutputConstraint.JsonSchema(tree));
        string Chain(int depth, string leaf) => depth == 0 ? leaf : $"{{\"v\":{depth},\"kids\":[{Chain(depth - 1, leaf)},{{\"v\":0}}]}}";

        Assert.True(constraint.Matches(Chain(40, "{\"v\":7}")));
        Assert.False(constraint.Matches(Chain(40, "{\"kids\":[]}")));        // v missing 40 levels down
        Assert.False(constraint.Matches(Chain(40, "{\"v\":\"7\"}")));
        var validator = JsonSchema.FromText(tree);
        var random = new Random(11);
        for (int i = 0; i < 25; i++)
        {
            var (output, complete) = ConstraintWalker.Walk(constraint, gpt2.Tokenizer, random, maxTokens: 20_000);
            if (!complete)
                continue;
            using var document = System.Text.Json.JsonDocument.Parse(output, new System.Text.Json.JsonDocumentOptions { MaxDepth = 100_000 });
            Assert.True(validator.Evaluate(document.RootElement).IsValid, Encoding.UTF8.GetString(output));
        }
    }

    [Theory]
    [InlineData("""{"type":"object","properties":{"next":{"$ref":"#"}},"required":["next"]}""")]
    [InlineData("""{"$defs":{"a":{"type":"array","minItems":1,"items":{"$ref":"#/$defs/a"}}},"$ref":"#/$defs/a"}""")]
    public void Compile_ReferenceThatOnlyRecurses_RefusedAsHavingNoFiniteOutput(string schema)
    {
        var ex = Assert.Throws<ConstraintException>(() => NewCompiler().Compile(OutputConstraint.JsonSchema(schema)));

        Assert.Contains("no finite output", ex.Problem);
    }

    [Theory]
    [InlineData("""{"type":"integer","minimum":-12,"maximum":345}""", new[] { "-12", "0", "7", "345", "-1", "99" }, new[] { "-13", "346", "007", "-0", "1.0", "1e2" })]
    [InlineData("""{"type":"number","minimum":-2,"maximum":3}""", new[] { "-2", "-1.999", "0.5", "2.25", "3", "-0.5" }, new[] { "3.5", "-2.1", "3.0", "4" })]
    [InlineData("""{"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":10}""", new[] { "1", "9" }, new[] { "0", "10" })]
    [InlineData("""{"type":"string","format":"date"}""", new[] { "\"2024-02-28\"", "\"1999-12-31\"", "\"2023-04-30\"" }, new[] { "\"2023-02-30\"", "\"2023-04-31\"", "\"2023-13-01\"", "\"23-01-01\"" })]
    [InlineData("""{"type":"string","maxLength":3}""", new[] { "\"\"", "\"abc\"", "\"a\\\"b\"", "\"\\u00e9\"", "\"日本語\"" }, new[] { "\"abcd\"", "\"a\nb\"", "\"\\ud800\"" })]
    [InlineData("""{"type":"string","pattern":"^a\"b$"}""", new[] { "\"a\\\"b\"" }, new[] { "\"a\"b\"" })]
    [InlineData("""{"type":"array","prefixItems":[{"type":"integer","minimum":0,"maximum":9},{"type":"boolean"}],"items":{"type":"null"},"minItems":1,"maxItems":3}""",
        new[] { "[7]", "[7,true]", "[0,false,null]" }, new[] { "[]", "[true]", "[7,null]", "[7,true,null,null]", "[7,true,1]" })]
    [InlineData("""{"type":"object","properties":{"dose":{"allOf":[{"$ref":"#/$defs/dose"}],"description":"as Pydantic writes a described field"}},"required":["dose"],"$defs":{"dose":{"type":"integer","minimum":1,"maximum":5}}}""", new[] { "{\"dose\":3}" }, new[] { "{\"dose\":6}", "{}" })]
    [InlineData("""{"type":"integer","multipleOf":5}""", new[] { "0", "5", "-15", "1000" }, new[] { "3", "-0", "12", "5.0" })]
    [InlineData("""{"type":"number","multipleOf":0.01,"minimum":0,"maximum":100}""", new[] { "0", "1.5", "99.99", "100" }, new[] { "1.234", "100.5", "-1" })]
    [InlineData("""{"type":"number","multipleOf":0.25,"minimum":0}""", new[] { "0.25", "1.50", "2", "3.75", "2.00" }, new[] { "0.3", "0.2", "-0.25" })]
    [InlineData("""{"type":"integer","multipleOf":15,"minimum":10,"maximum":100}""", new[] { "15", "30", "90" }, new[] { "10", "0", "105", "100" })]
    [InlineData("""{"type":"number","multipleOf":2.5,"minimum":-5,"maximum":5}""", new[] { "-5", "-2.5", "0", "2.5", "5" }, new[] { "1", "7.5", "-7.5" })]
    [InlineData("""{"type":"integer","multipleOf":0.5}""", new[] { "3", "-7" }, new[] { "3.5" })]
    [InlineData("""{"type":"array","items":[{"type":"null"},{"type":"boolean"}],"additionalItems":false}""",
        new[] { "[]", "[null]", "[null,true]" }, new[] { "[true]", "[null,true,null]" })]
    [InlineData("""{"prefixItems":[{"const":"a"}],"minItems":3,"items":{"type":"integer","minimum":1,"maximum":2}}""",
        new[] { "[\"a\",1,2]", "[\"a\",2,2,1,1]" }, new[] { "[\"a\",1]", "[1,1,1]" })]
    [InlineData("""{"type":"object","properties":{"a":{"type":"null"},"b":{"type":"boolean"},"c":{"type":"null"}},"required":["b"]}""",
        new[] { "{\"b\":true}", "{\"a\":null,\"b\":false}", "{\"b\":true,\"c\":null}", "{\"a\":null,\"b\":true,\"c\":null}" },
        new[] { "{}", "{\"a\":null}", "{\"b\":true,\"a\":null}", "{,\"b\":true}", "{\"b\":true,}" })]
    public void Matches_SchemaLanguage_AcceptsValidAndRejectsInvalidTexts(string schema, string[] valid, string[] invalid)
    {
        var constraint = NewCompiler().Compile(OutputConstraint.JsonSchema(schema));
        foreach (string text in valid)
            Assert.True(constraint.Matches(text), text);
        foreach (string text in invalid)
            Assert.False(constraint.Matches(text), text);
    }
}
