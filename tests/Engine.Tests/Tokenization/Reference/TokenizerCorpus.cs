namespace Serving.Engine.Tests.Tokenization.Reference;

/// <summary>
/// Texts for the tokenizer reference tests, written for this project: scripts from every continent, emoji sequences
/// (ZWJ, skin tones, flags, keycaps), characters outside the BMP, digits of every length, code, whitespace runs, CRLF
/// and literal special-token text; each also with a leading space and a trailing newline.
/// </summary>
internal static class TokenizerCorpus
{
    private static readonly string[] Base =
    [
        "Hello world", "Hello, my name is Ada and I'm a programmer.", "They've said it's fine; we'll see. DON'T PANIC!", "\"Quoted\" and 'single' quotes…",
        "What?! Really??? Yes!!!", "e.g. i.e. etc. U.S.A.", "mother-in-law, state-of-the-art", "CamelCaseIdentifiersAndSnake_case_names",
        "Tiếng Việt có nhiều dấu: Việt Nam, người, nhiều, được", "Français : élève, garçon, œuvre, à bientôt", "Straße, Größe, Ärger, Übermaß",
        "Zażółć gęślą jaźń", "Ελληνικά: καλημέρα κόσμε", "Русский язык: съешь же ещё этих мягких французских булок", "Українська: ґанок, їжак, є",
        "العربية: مرحبا بالعالم", "עברית: שלום עולם", "فارسی: ایران، تهران", "हिन्दी: नमस्ते दुनिया", "বাংলা: ওহে বিশ্ব", "தமிழ்: வணக்கம் உலகம்",
        "ภาษาไทย: สวัสดีชาวโลก", "ລາວ: ສະບາຍດີ", "ខ្មែរ: សួស្តី​ពិភពលោក", "中文：你好，世界！我爱编程。", "日本語：こんにちは世界、カタカナとひらがな", "한국어: 안녕하세요 세계",
        "አማርኛ: ሰላም ልዑል", "Kiswahili: Habari ya dunia", "Yorùbá: Ẹ kú àárọ̀", "ʻŌlelo Hawaiʻi", "Te reo Māori: Kia ora", "ᐃᓄᒃᑎᑐᑦ: ᐊᐃᖓᐃ",
        "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ", "ქართული: გამარჯობა", "Հայերեն: Բարեւ աշխարհ", "Монгол: Сайн байна уу", "Quechua: Allin p'unchay", "Guaraní: Mba'éichapa",
        "Emoji 😀😃😄 and 🎉", "Family 👨‍👩‍👧‍👦 and couple 👩‍❤️‍👨", "Thumbs 👍🏽👍🏿👍🏻", "Flags 🇳🇴🇯🇵🇧🇷🇿🇦", "Keycaps 1️⃣2️⃣#️⃣", "Technologist 👩🏾‍💻 and 🧑‍🚀",
        "Math bold 𝐀𝐁𝐂 𝐚𝐛𝐜", "𝟏𝟐𝟑 𝟒𝟓𝟔", "Gothic 𐌰𐌱𐌲", "CJK ext B 𠀀𠀁𠀂", "Music 𝄞𝄢", "Linear B 𐀀𐀁", "Cuneiform 𒀀𒀁", "Hieroglyph 𓀀𓁐",
        "7", "42", "123", "1234", "12345", "123456789", "3.14159265358979", "1,000,000", "0001", "2024-12-02T18:32:27Z", "+1 (555) 010-9999",
        "1234567890123456789012345678901234567890", "v1.2.3-beta.4+build.5", "0x7fffffff and 0b1010", "٣٤٥ ١٢ and ४२ and ๔๒",
        "def add(a, b):\n    return a + b\n", "{\"key\": [1, 2.5, null, true], \"nested\": {\"x\": \"y\"}}", "public static int Main(string[] args) { return 0; }",
        "cat file.txt | grep -E '^[a-z]+$' | sort -u > out.txt", "<html><body class=\"x\">Hi &amp; bye</body></html>", "if (x != null && y >= 2) { z++; }",
        "\tindented\twith\ttabs", "for i in range(10):\n\tprint(i)\n", "SELECT * FROM users WHERE id = 42;", "a  b   c    d", "   leading spaces",
        "trailing spaces   ", "\n\n\nthree newlines", "line1\r\nline2\r\nline3", "\r\n\r\n", " \n \n ", "mixed \t \n \r\n end", "\u00a0non-breaking\u00a0space",
        "zero\u200bwidth\u200bspace", "soft\u00adhyphen", "a\u0301 combining vs á", "ﬁ ligature and ｆｕｌｌｗｉｄｔｈ", "Ⅻ roman and ½ fraction",
        "<|begin_of_text|>Hello", "<|im_start|>user\nHi<|im_end|>", "<s> and </s> as text", "<|endoftext|>", "before<|eot_id|>after", "[INST] not special [/INST]",
        "<think>reasoning</think>", "@user #hashtag $100 50% ~tilde^caret", "email@example.com https://example.com/path?q=1&r=2#frag", "C:\\Windows\\System32",
        "¿Qué? ¡Sí! «guillemets» „Anführung“", "tab\tand\u000bvertical\ffeed", "", " ", "\n", "x",
    ];

    public static IReadOnlyList<string> Texts { get; } = Base
        .SelectMany(t => new[] { t, " " + t, t + "\n" })
        .Distinct(StringComparer.Ordinal)
        .ToList();
}
