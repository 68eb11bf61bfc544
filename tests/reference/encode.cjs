// Reference token ids from @lenml/tokenizers (a JavaScript port of Hugging Face's tokenizers, independent of Serving),
// for the tokenizer tests. Reads {"package": "…"} or {"folder": "DIR with tokenizer.json and tokenizer_config.json"},
// with "texts": [...] and "add_special_tokens", on stdin; writes {"ids": [[...], ...]} on stdout.
const fs = require("fs");
const path = require("path");
const request = JSON.parse(fs.readFileSync(0, "utf8"));
let tokenizer;
if (request.folder) {
  const { TokenizerLoader } = require("@lenml/tokenizers");
  const read = (name) => JSON.parse(fs.readFileSync(path.join(request.folder, name), "utf8"));
  tokenizer = TokenizerLoader.fromPreTrained({ tokenizerJSON: read("tokenizer.json"), tokenizerConfig: read("tokenizer_config.json") });
} else {
  tokenizer = require(request.package).fromPreTrained();
}
const ids = request.texts.map((t) => Array.from(tokenizer.encode(t, { add_special_tokens: request.add_special_tokens })));
process.stdout.write(JSON.stringify({ ids }));
