using Serving.Authoring.Synthetic;
using Serving.Engine.Templating;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization;

/// <summary>
/// The model's chat template through <see cref="ChatTemplate"/>: rendered by the template engine (exactness against
/// jinja2 is <c>JinjaTemplateReferenceTests</c>); refusals as the errors the chat endpoint turns into 400s.
/// </summary>
public sealed class ChatTemplateTests
{
    private static readonly DateTimeOffset Now = new(2026, 3, 7, 14, 5, 9, TimeSpan.Zero);

    private static List<object?> Messages(params (string Role, string Content)[] messages) =>
        messages.Select(m => (object?)new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList();

    [Fact]
    public void Render_SyntheticChatMlTemplate_ImStartBlocksAndAssistantCue()
    {
        var t = new ChatTemplate(SyntheticTokenizerWriter.ChatMlTemplate, "<|endoftext|>", "<|im_end|>");
        var conversation = Messages(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye"));

        Assert.Equal(
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
            t.Render(conversation, null, addGenerationPrompt: true, null, Now));
        Assert.EndsWith("Bye<|im_end|>\n", t.Render(conversation, null, addGenerationPrompt: false, null, Now), StringComparison.Ordinal);
    }

    [Fact]
    public void Render_TemplateArguments_ReachTheTemplate()
    {
        var t = new ChatTemplate("{% if enable_thinking is defined and not enable_thinking %}<think></think>{% endif %}{{ messages[0].content }}", null, null);
        Assert.Equal("<think></think>x", t.Render(Messages(("user", "x")), null, true, new Dictionary<string, object?> { ["enable_thinking"] = false }, Now));
        Assert.Equal("x", t.Render(Messages(("user", "x")), null, true, null, Now));
    }

    [Fact]
    public void Render_NoTemplate_ChatTemplateExceptionNamingWhereOneWouldBe()
    {
        var ex = Assert.Throws<ChatTemplateException>(() => new ChatTemplate((string?)null, null, null).Render(Messages(("user", "Hi")), null, true, null, Now));
        Assert.Contains("chat_template.jinja", ex.Message, StringComparison.Ordinal);
        Assert.Contains("/v1/completions", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_TemplateRaises_ChatTemplateExceptionWithItsMessage()
    {
        var t = new ChatTemplate("{% if messages[0].role != 'user' %}{{ raise_exception('Conversations must start with a user message') }}{% endif %}", null, null);
        var ex = Assert.Throws<ChatTemplateException>(() => t.Render(Messages(("assistant", "Hi")), null, true, null, Now));
        Assert.Equal("Conversations must start with a user message", ex.Message);
    }

    [Fact]
    public void Render_TemplateFailsOnTheMessages_ChatTemplateException()
    {
        var t = new ChatTemplate("{{ messages[0].content.missing.deeper }}", null, null);
        var ex = Assert.Throws<ChatTemplateException>(() => t.Render(Messages(("user", "Hi")), null, true, null, Now));
        Assert.Contains("undefined", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{% include 'other.jinja' %}", "include")]
    [InlineData("{% extends 'base' %}", "extends")]
    [InlineData("{% for m in messages recursive %}{% endfor %}", "recursive")]
    [InlineData("{% if true %}never closed", "endif")]
    [InlineData("{{ 'a' + }}", "ends too early")]
    [InlineData("{{ 'x' | no_such_filter }}", "no_such_filter")]
    [InlineData("{% if 1 is no_such_test %}{% endif %}", "no_such_test")]
    public void Constructor_UnsupportedOrBrokenTemplate_TemplateExceptionNamingIt(string source, string named)
    {
        var ex = Assert.ThrowsAny<TemplateException>(() => new ChatTemplate(source, null, null));
        Assert.Contains(named, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_NamedTemplates_ChosenAsTransformersChooses()
    {
        var t = new ChatTemplate(new Dictionary<string, string> { ["default"] = "plain", ["tool_use"] = "tools:{{ tools | length }}", ["rag"] = "rag" }, null, null);
        var messages = Messages(("user", "x"));
        var tools = new List<object?> { new Dictionary<string, object?> { ["type"] = "function" } };

        Assert.Equal("plain", t.Render(messages, null, true, null, Now));
        Assert.Equal("tools:1", t.Render(messages, tools, true, null, Now));
        Assert.Equal("rag", t.Render(messages, tools, true, null, Now, name: "rag"));
        Assert.Contains("no chat template named 'nope'", Assert.Throws<ChatTemplateException>(() => t.Render(messages, null, true, null, Now, name: "nope")).Message,
            StringComparison.Ordinal);
    }

    [Fact]
    public void Render_SeveralTemplatesNoDefault_ChatTemplateExceptionListingThem()
    {
        var t = new ChatTemplate(new Dictionary<string, string> { ["a"] = "A", ["b"] = "B" }, null, null);
        var ex = Assert.Throws<ChatTemplateException>(() => t.Render(Messages(("user", "x")), null, true, null, Now));
        Assert.Contains("a, b", ex.Message, StringComparison.Ordinal);
    }
}
