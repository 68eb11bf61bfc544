namespace Serving.Engine.Tokenization;

internal enum ChatTemplateFamily
{
    Unknown,
    ChatML,
    Llama2,
    Llama3,
    Mistral,
}
