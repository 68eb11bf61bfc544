using Serving.Engine.Synthetic;
using Serving.Engine.Tokenization;

namespace Serving.Engine.Tests.Tokenization;

public sealed class ChatTemplateTests
{
    private static readonly ChatMessage[] Conversation = [new("system", "Be brief."), new("user", "Hi"), new("assistant", "Hello!"), new("user", "Bye")];

    [Fact]
    public void Render_ChatMl_UsesImStartBlocksAndAssistantCue()
    {
        var t = new ChatTemplate(SyntheticTokenizerWriter.ChatMlTemplate, "<|endoftext|>", "<|im_end|>");
        Assert.Equal(ChatTemplateFamily.ChatML, t.Family);
        Assert.Equal(
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
            t.Render(Conversation));
    }

    [Fact]
    public void Render_Llama3_UsesHeaderIds()
    {
        var t = new ChatTemplate("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}", "<|begin_of_text|>", "<|eot_id|>");
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            t.Render([new("user", "Hi")]));
    }

    [Fact]
    public void Render_Llama2_PutsSystemInsideFirstInstruction()
    {
        var t = new ChatTemplate("[INST] <<SYS>>", "<s>", "</s>");
        Assert.Equal("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]", t.Render(Conversation));
    }

    [Fact]
    public void Render_Mistral_InstBlocks()
    {
        var t = new ChatTemplate("{{ '[INST] ' + message['content'] + ' [/INST]' }}", "<s>", "</s>");
        Assert.Equal("<s>[INST] Hi [/INST]Hello!</s>[INST] Bye [/INST]", t.Render(Conversation.Skip(1).ToArray()));
    }

    [Fact]
    public void Render_UnknownTemplate_ThrowsExplicitError()
    {
        var t = new ChatTemplate("{{ messages | tojson }}", null, null);
        var ex = Assert.Throws<ChatTemplateException>(() => t.Render([new("user", "Hi")]));
        Assert.Contains("not one of the supported families", ex.Message);
    }

    [Fact]
    public void Render_NoTemplate_ThrowsExplicitError() =>
        Assert.Throws<ChatTemplateException>(() => new ChatTemplate(null, null, null).Render([new("user", "Hi")]));

    [Fact]
    public void Render_Llama2_NonAlternatingRoles_Throws() =>
        Assert.Throws<ChatTemplateException>(() => new ChatTemplate("[INST] <<SYS>>", "<s>", "</s>").Render([new("user", "a"), new("user", "b")]));
}
