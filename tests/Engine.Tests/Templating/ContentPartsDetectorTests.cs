using Serving.Engine.Templating;

namespace Serving.Engine.Tests.Templating;

/// <summary>A template takes lists of content parts when it loops over a message's content, as vLLM's "auto" content format decides.</summary>
public sealed class ContentPartsDetectorTests
{
    [Theory]
    // Gemma 3's shape: a string test, else a loop over the parts.
    [InlineData("{% for message in messages %}{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}{{ item['text'] }}{% endfor %}{% endif %}{% endfor %}", true)]
    [InlineData("{% for m in messages[1:] %}{% for part in m.content %}{{ part.text }}{% endfor %}{% endfor %}", true)]
    [InlineData("{% for m in messages %}{% if true %}{% for part in m['content'] | selectattr('type', 'equalto', 'text') %}{{ part.text }}{% endfor %}{% endif %}{% endfor %}", true)]
    // Strings only: Llama's and Qwen's shape, a loop over something else, content looped outside a message loop.
    [InlineData("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>{% endfor %}", false)]
    [InlineData("{% for message in messages %}{% for call in message['tool_calls'] %}{{ call.function.name }}{% endfor %}{% endfor %}", false)]
    [InlineData("{% for part in content %}{{ part }}{% endfor %}", false)]
    public void IteratesMessageContent_Template_AsVllmDetects(string source, bool expected) =>
        Assert.Equal(expected, JinjaTemplate.Parse(source).IteratesMessageContent);
}
