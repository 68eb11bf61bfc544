namespace Serving.Engine.Tokenization;

public enum ChatTemplateFamily
{
    Unknown,
    ChatML,
    Llama2,
    Llama3,
    Mistral,
}
