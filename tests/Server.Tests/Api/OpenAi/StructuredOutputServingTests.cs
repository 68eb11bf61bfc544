using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Json.Schema;
using Serving.Server.Tests.Support;
using Serving.Tests.Shared;

namespace Serving.Server.Tests.Api.OpenAi;

/// <summary>
/// Structured output through the real server: constrained rows with different schemas and adapters share batches with
/// free rows; every constrained output validates (JsonSchema.Net, formats asserted) and free rows are unchanged.
/// </summary>
public sealed class StructuredOutputServingTests(StructuredOutputServerFixture fixture) : IClassFixture<StructuredOutputServerFixture>
{
    /// <summary>SERVING_STRUCTURED_REQUESTS overrides the 200 constrained requests of the mixed-batch test.</summary>
    private static int ConstrainedRequests => int.TryParse(Environment.GetEnvironmentVariable("SERVING_STRUCTURED_REQUESTS"), out int n) ? n : 200;

    private string AdapterFor(int i) => i % 4 == 0 ? fixture.Model : StructuredOutputServerFixture.Adapters[i % 4 - 1];

    /// <summary>
    /// Greedy: a sampled row's draw moves with the last bit of its logits, and a GEMM may round a row differently with
    /// the batch's shape (which prefills ride along), constraint or not; argmax shows whether the row itself changed.
    /// </summary>
    private object FreeRequest(int i) => new
    {
        model = AdapterFor(i), prompt = $"Free text number {i}:", max_tokens = 24, ignore_eos = true, return_token_ids = true, temperature = 0.0,
    };

    private object SchemaRequest(int i, string schema) => new
    {
        model = AdapterFor(i), prompt = $"Extract record {i} as JSON:", max_tokens = 900,
        temperature = i % 2 == 0 ? 0.0 : 0.9, seed = (ulong)i, top_p = i % 2 == 0 ? 1.0 : 0.95, logprobs = i % 5 == 0 ? 2 : (int?)null,
        response_format = new { type = "json_schema", json_schema = new { name = "record", schema = JsonNode.Parse(schema), strict = true } },
    };

    private async Task<JsonNode> PostOk(string path, object body)
    {
        var (status, response) = await HttpJson.PostAsync(fixture.Http, path, body);
        Assert.True(status == 200, response.ToJsonString());
        return response;
    }

    [Fact]
    public async Task Completions_ConstrainedRequestsMixedWithAdaptersAndFreeRows_AllValidateAndFreeRowsUnchanged()
    {
        const int free = 24;
        var alone = new List<int[]>();
        foreach (int i in Enumerable.Range(0, free))
            alone.Add(TokenIds(await PostOk("/v1/completions", FreeRequest(i))));

        var schemas = ExtractionSchemas.Valid;
        var constrained = Enumerable.Range(0, ConstrainedRequests).Select(i => (Index: i, Schema: schemas[i % schemas.Length].Schema)).ToList();
        // At most 12 in flight (the server runs 4, the rest queue): all at once, the last would queue past the client's timeout on a slow machine.
        using var inFlight = new SemaphoreSlim(12);
        async Task<JsonNode> Limited(object request)
        {
            await inFlight.WaitAsync();
            try
            {
                return await PostOk("/v1/completions", request);
            }
            finally
            {
                inFlight.Release();
            }
        }

        // Free rows start spread through the constrained ones, so they share batches with them.
        var constrainedTasks = new List<Task<JsonNode>>();
        var freeTasks = new List<Task<JsonNode>>();
        int every = Math.Max(1, constrained.Count / free);
        foreach (var c in constrained)
        {
            if (c.Index % every == 0 && freeTasks.Count < free)
                freeTasks.Add(Limited(FreeRequest(freeTasks.Count)));
            constrainedTasks.Add(Limited(SchemaRequest(c.Index, c.Schema)));
        }

        while (freeTasks.Count < free)
            freeTasks.Add(Limited(FreeRequest(freeTasks.Count)));
        var constrainedBodies = await Task.WhenAll(constrainedTasks);
        var freeBodies = await Task.WhenAll(freeTasks);

        var options = new EvaluationOptions { RequireFormatValidation = true };
        var validators = schemas.ToDictionary(s => s.Schema, s => JsonSchema.FromText(s.Schema));
        for (int k = 0; k < constrained.Count; k++)
        {
            var choice = constrainedBodies[k]["choices"]![0]!;
            string text = (string)choice["text"]!;
            Assert.Equal("stop", (string?)choice["finish_reason"]);
            Assert.Null(choice["incomplete_details"]);
            using var document = JsonDocument.Parse(text);
            Assert.True(validators[constrained[k].Schema].Evaluate(document.RootElement, options).IsValid, $"request {k}: {text}");
        }

        for (int i = 0; i < free; i++)
            Assert.Equal(alone[i], TokenIds(freeBodies[i]));
    }

    [Fact]
    public async Task Completions_RegexAndChoiceWithAdapters_EveryOutputMatches()
    {
        string[] patterns = [@"[A-Z]\d{2}\.\d", @"(mild|moderate|severe) \(grade [1-4]\)", @"\d{1,3} mg (once|twice) daily", @"[a-z]{3,8}-[0-9]{2}"];
        string[] choices = ["Ja", "Nein", "Vielleicht", "keine Angabe"];
        var regexTasks = Enumerable.Range(0, 40).Select(i => PostOk("/v1/completions", new
        {
            model = AdapterFor(i), prompt = $"Code {i}:", max_tokens = 64, temperature = i % 3 == 0 ? 0.0 : 1.0, seed = (ulong)i,
            structured_outputs = new { regex = patterns[i % patterns.Length] },
        })).ToList();
        var choiceTasks = Enumerable.Range(0, 40).Select(i => PostOk("/v1/completions", new
        {
            model = AdapterFor(i + 1), prompt = $"Antwort {i}:", max_tokens = 16, temperature = 1.0, seed = (ulong)i, structured_outputs = new { choice = choices },
        })).ToList();
        var regexBodies = await Task.WhenAll(regexTasks);
        var choiceBodies = await Task.WhenAll(choiceTasks);
        for (int i = 0; i < regexBodies.Length; i++)
            Assert.Matches(new Regex($"^(?:{patterns[i % patterns.Length]})$"), (string)regexBodies[i]["choices"]![0]!["text"]!);
        Assert.All(choiceBodies, b => Assert.Contains((string)b["choices"]![0]!["text"]!, choices));
        Assert.True(choiceBodies.Select(b => (string)b["choices"]![0]!["text"]!).Distinct().Count() > 1);   // sampling still samples
    }

    [Fact]
    public async Task Completions_GrammarWithAdaptersOnRestAndGrpc_EveryOutputASentence()
    {
        const string grammar = """
            root ::= select " from " table (" where " condition)?
            select ::= "SELECT " column (", " column)*
            column ::= "id" | "name" | "dose_mg"
            table ::= "patients" | "orders"
            condition ::= column " = " value (" AND " condition)?
            value ::= [0-9]{1,4} | "'" [a-z]{1,8} "'"
            """;
        var sentence = new Regex(@"^SELECT (id|name|dose_mg)(, (id|name|dose_mg))* from (patients|orders)( where (id|name|dose_mg) = ([0-9]{1,4}|'[a-z]{1,8}')( AND (id|name|dose_mg) = ([0-9]{1,4}|'[a-z]{1,8}'))*)?$");                   // condition recurses without a bound
        var bodies = await Task.WhenAll(Enumerable.Range(0, 24).Select(i => PostOk("/v1/completions", i % 2 == 0
            ? new { model = AdapterFor(i), prompt = $"Query {i}:", max_tokens = 120, temperature = 1.0, seed = (ulong)i, structured_outputs = (object)new { grammar } }
            : new { model = AdapterFor(i), prompt = $"Query {i}:", max_tokens = 120, temperature = 1.0, seed = (ulong)i, guided_grammar = (object)grammar })));
        using var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(fixture.Server.Address);
        var reply = await new V1.Generation.GenerationClient(channel).GenerateAsync(new V1.GenerateRequest
        {
            Model = fixture.Model, Prompt = "Query:", MaxTokens = 120, Temperature = 0, StructuredOutput = new V1.StructuredOutput { Grammar = grammar },
        });

        foreach (var body in bodies.Where(b => (string)b["choices"]![0]!["finish_reason"]! == "stop"))
            Assert.Matches(sentence, (string)body["choices"]![0]!["text"]!);
        Assert.Contains(bodies, b => (string)b["choices"]![0]!["finish_reason"]! == "stop");
        Assert.True(reply.FinishReason != "stop" || sentence.IsMatch(reply.Text), reply.Text);
        var lark = await PostOk("/v1/completions", new
        {
            model = StructuredOutputServerFixture.Adapters[0], prompt = "Answer:", max_tokens = 12, temperature = 1.0, seed = 3UL,
            guided_grammar = "start: answer \".\"\nanswer: \"yes\"i | \"no\"i\n%ignore \" \"\n",
        });
        Assert.Matches("^ *(?i:yes|no) *\\. *$", (string)lark["choices"]![0]!["text"]!);
        var (status, error) = await HttpJson.PostAsync(fixture.Http, "/v1/completions",
            new { model = fixture.Model, prompt = "x", max_tokens = 4, structured_outputs = new { grammar = "root ::= value" } });
        Assert.Equal(400, status);
        Assert.Equal("structured_outputs.grammar[9]", (string)error["error"]!["param"]!);
    }

    private async Task<int> TokenId(string text)
    {
        var body = await PostOk("/tokenize", new { model = fixture.Model, prompt = text, add_special_tokens = false });
        return (int)body["tokens"]!.AsArray().Single()!;
    }

    [Fact]
    public async Task Completions_RecursiveGrammarAndSchema_NestDeeperThanAnyUnrollingAndStayValid()
    {
        // logit_bias pushes the opening token each step: an unrolled grammar (5 levels) or schema (3) forced the model to
        // close at the bound; a pushdown automaton lets it open at every step.
        const string grammar = "root ::= \"(\" root \")\" | \"x\"";
        int open = await TokenId("("), bracket = await TokenId("[");
        var parentheses = await PostOk("/v1/completions", new
        {
            model = StructuredOutputServerFixture.Adapters[0], prompt = "Nest:", max_tokens = 40, temperature = 0.0,
            logit_bias = new Dictionary<string, int> { [open.ToString(System.Globalization.CultureInfo.InvariantCulture)] = 100 },
            structured_outputs = new { grammar },
        });
        var arrays = await PostOk("/v1/completions", new
        {
            model = fixture.Model, prompt = "Nest:", max_tokens = 40, temperature = 0.0,
            logit_bias = new Dictionary<string, int> { [bracket.ToString(System.Globalization.CultureInfo.InvariantCulture)] = 100 },
            response_format = new { type = "json_schema", json_schema = new { name = "nested", schema = new { type = "array" } } },
        });
        var sampled = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => PostOk("/v1/completions", new
        {
            model = AdapterFor(i), prompt = $"Nest {i}:", max_tokens = 300, temperature = 1.0, seed = (ulong)i, structured_outputs = new { grammar },
        })));

        Assert.Equal(new string('(', 40), (string)parentheses["choices"]![0]!["text"]!);
        Assert.Equal("length", (string)parentheses["choices"]![0]!["finish_reason"]!);
        Assert.Equal(new string('[', 40), (string)arrays["choices"]![0]!["text"]!);
        foreach (var body in sampled.Where(b => (string)b["choices"]![0]!["finish_reason"]! == "stop"))
        {
            string text = (string)body["choices"]![0]!["text"]!;
            Assert.Matches(@"^\(*x\)*$", text);
            Assert.Equal(text.Count(c => c == '('), text.Count(c => c == ')'));
        }
    }

    [Fact]
    public async Task Completions_AmbiguousGrammar_InTheLanguageOr400NamingTheBoundAndOthersServed()
    {
        // x^n parses in exponentially many ways under a ::= a{1000} | "x", a call stack each: the automaton keeps the
        // shallowest, and when new stacks still outgrow its frame bound the request (only it) ends with a 400 naming it.
        int x = await TokenId("x");
        var ambiguous = HttpJson.PostAsync(fixture.Http, "/v1/completions", new
        {
            model = fixture.Model, prompt = "x", max_tokens = 600, temperature = 0.0,
            logit_bias = new Dictionary<string, int> { [x.ToString(System.Globalization.CultureInfo.InvariantCulture)] = 100 },
            structured_outputs = new { grammar = "root ::= a\na ::= a{1000} | \"x\"" },
        });
        var ordinary = Enumerable.Range(0, 3).Select(i => PostOk("/v1/completions", new
        {
            model = StructuredOutputServerFixture.Adapters[i], prompt = $"ordinary {i}", max_tokens = 40, ignore_eos = true,
            structured_outputs = new { regex = "[a-z ]+" },
        })).ToList();

        var (status, body) = await ambiguous;
        if (status == 200)
            Assert.Matches("^x+$", (string)body["choices"]![0]!["text"]!);
        else
        {
            Assert.Equal(400, status);
            Assert.Contains("call frames", (string?)body["error"]!["message"]);
        }

        foreach (var answer in await Task.WhenAll(ordinary))
            Assert.Matches("^[a-z ]+$", (string)answer["choices"]![0]!["text"]!);
    }

    [Fact]
    public async Task Chat_StructuralTagWithAdapters_EveryCallHeldToItsSchema()
    {
        var tag = new JsonObject
        {
            ["type"] = "structural_tag", ["triggers"] = new JsonArray("<"),                // one token, so random text keeps starting calls
            ["structures"] = new JsonArray(new JsonObject
            {
                ["begin"] = "<call=dose>", ["end"] = "</call>",
                ["schema"] = JsonNode.Parse("""{"type":"object","properties":{"mg":{"type":"integer","minimum":1,"maximum":500}},"required":["mg"],"additionalProperties":false}"""),
            }),
        };
        // Random weights would rarely write the trigger: a bias makes it likely, and the constraint then writes the call.
        var (_, tokenized) = await HttpJson.PostAsync(fixture.Http, "/tokenize", new { model = fixture.Model, prompt = "<", add_special_tokens = false });
        string trigger = ((int)tokenized["tokens"]![0]!).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var bodies = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => PostOk("/v1/completions", new
        {
            model = AdapterFor(i), prompt = $"Dose {i}:", max_tokens = 60, temperature = 1.0, seed = (ulong)i,
            logit_bias = new Dictionary<string, int> { [trigger] = 12 }, structured_outputs = new { structural_tag = tag },
        })));
        var viaFormat = await PostOk("/v1/chat/completions", new
        {
            model = fixture.Model, messages = new[] { new { role = "user", content = "dose?" } }, max_tokens = 40, temperature = 0,
            response_format = JsonNode.Parse(tag.ToJsonString()),
        });

        int complete = 0;
        foreach (var body in bodies.Append(viaFormat))
        {
            var choice = body["choices"]![0]!;
            string text = (string?)choice["text"] ?? (string?)choice["message"]!["content"] ?? "";
            var calls = text.Split("<call=").Skip(1).ToList();
            // Every call but one cut short by max_tokens is complete and valid.
            for (int c = 0; c < calls.Count; c++)
                if (c < calls.Count - 1 || (string)choice["finish_reason"]! != "length")
                {
                    Assert.Matches("""^dose>\{"mg":([1-9]|[1-9][0-9]|[1-4][0-9]{2}|500)\}</call>""", calls[c]);
                    complete++;
                }
        }

        Assert.True(complete > 0, "no output wrote a whole call");
    }

    [Fact]
    public async Task Completions_MaxTokensBeforeComplete_LengthAndIncompleteDetails()
    {
        var body = await PostOk("/v1/completions", new
        {
            model = fixture.Model, prompt = "Too short:", max_tokens = 3, temperature = 0,
            response_format = new { type = "json_schema", json_schema = new { name = "r", schema = JsonNode.Parse(ExtractionSchemas.Valid[0].Schema) } },
        });
        var choice = body["choices"]![0]!;
        Assert.Equal("length", (string?)choice["finish_reason"]);
        Assert.Equal("length", (string?)choice["incomplete_details"]!["reason"]);
        string text = (string)choice["text"]!;
        Assert.StartsWith("{\"", text);                                       // a prefix of a valid record, and only that
        Assert.StartsWith(text, "{\"patient_id\":\"P");

        var events = await HttpJson.StreamAsync(fixture.Http, "/v1/chat/completions", new
        {
            model = fixture.Model, messages = new[] { new { role = "user", content = "JSON please" } }, max_tokens = 2, temperature = 0, stream = true,
            response_format = new { type = "json_object" },
        });
        var last = JsonNode.Parse(events[^2])!["choices"]![0]!;
        Assert.Equal("length", (string?)last["finish_reason"]);
        Assert.NotNull(last["incomplete_details"]);
    }

    [Fact]
    public async Task Completions_ChoiceCompleteWithNothingToFollow_StopsBeforeMaxTokens()
    {
        var body = await PostOk("/v1/completions", new
        {
            model = fixture.Model, prompt = "Pick:", max_tokens = 50, temperature = 0, ignore_eos = true, return_token_ids = true,
            structured_outputs = new { choice = new[] { "alpha", "beta" } },
        });
        var choice = body["choices"]![0]!;
        Assert.Equal("stop", (string?)choice["finish_reason"]);
        Assert.Contains((string)choice["text"]!, new[] { "alpha", "beta" });
        Assert.True(choice["token_ids"]!.AsArray().Count < 50);
    }

    [Fact]
    public async Task Completions_ConstraintWithLogprobsAndStreaming_SameTextAndRawLogprobs()
    {
        object Request(bool stream) => new
        {
            model = StructuredOutputServerFixture.Adapters[0], prompt = "Dose:", max_tokens = 40, temperature = 0, logprobs = 3, stream,
            structured_outputs = new { regex = @"\d{2,3} mg" },
        };
        var unary = await PostOk("/v1/completions", Request(false));
        var events = await HttpJson.StreamAsync(fixture.Http, "/v1/completions", Request(true));
        string streamed = string.Concat(events.Where(e => e != "[DONE]").Select(e => (string?)JsonNode.Parse(e)!["choices"]![0]!["text"] ?? ""));
        string text = (string)unary["choices"]![0]!["text"]!;
        Assert.Equal(text, streamed);
        Assert.Matches(@"^\d{2,3} mg$", text);
        var lp = unary["choices"]![0]!["logprobs"]!;
        Assert.All(lp["token_logprobs"]!.AsArray(), v => Assert.True((double)v! <= 0));
        Assert.Equal(3, lp["top_logprobs"]![0]!.AsObject().Count);
    }

    [Fact]
    public async Task Chat_StructuredOutputsJsonWithAdapter_ValidatesAndSchemaStringAccepted()
    {
        string schema = ExtractionSchemas.Valid.Single(s => s.Name == "translation_pair").Schema;
        var body = await PostOk("/v1/chat/completions", new
        {
            model = StructuredOutputServerFixture.Adapters[2], messages = new[] { new { role = "user", content = "Translate 'good morning' to German" } },
            max_tokens = 400, temperature = 0.7, seed = 5ul, structured_outputs = new { json = schema },
        });
        string content = (string)body["choices"]![0]!["message"]!["content"]!;
        using var document = JsonDocument.Parse(content);
        Assert.True(JsonSchema.FromText(schema).Evaluate(document.RootElement).IsValid, content);
    }

    [Fact]
    public async Task Completions_WhitespacePatternAndStopString_SpacedValidJsonThenIncompleteOnStop()
    {
        string schema = ExtractionSchemas.Valid.Single(s => s.Name == "triage").Schema;
        var spaced = await PostOk("/v1/completions", new
        {
            model = StructuredOutputServerFixture.Adapters[0], prompt = "Spaced:", max_tokens = 300, temperature = 0,
            structured_outputs = new { json = JsonNode.Parse(schema), whitespace_pattern = "[ ]" },
        });
        string text = (string)spaced["choices"]![0]!["text"]!;
        Assert.Contains("\" : ", text);                                  // exactly one space around every colon
        using (var document = JsonDocument.Parse(text))
            Assert.True(JsonSchema.FromText(schema).Evaluate(document.RootElement).IsValid, text);

        var stopped = await PostOk("/v1/completions", new
        {
            model = fixture.Model, prompt = "Stop early:", max_tokens = 300, temperature = 0, stop = new[] { "priority" },
            response_format = new { type = "json_schema", json_schema = new { name = "t", schema = JsonNode.Parse(schema) } },
        });
        var choice = stopped["choices"]![0]!;
        Assert.Equal("stop", (string?)choice["finish_reason"]);
        Assert.Equal("stop", (string?)choice["incomplete_details"]!["reason"]);
        Assert.Equal("{\"kind\":\"triage\",\"", (string)choice["text"]!);
    }

    private static int[] TokenIds(JsonNode body) => [.. body["choices"]![0]!["token_ids"]!.AsArray().Select(x => (int)x!)];
}
