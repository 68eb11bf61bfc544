// Reference token ids from @lenml/tokenizers (a JavaScript port of Hugging Face's tokenizers, independent of Serving),
// for the tokenizer tests. Reads {"package": "…"} or {"folder": "DIR with tokenizer.json and tokenizer_config.json"},
// with "texts": [...] and "add_special_tokens", on stdin; writes {"ids": [[...], ...], "texts": [...], "texts_with_specials": [...]} on stdout.
const fs = require("fs");
const path = require("path");
const request = JSON.parse(fs.readFileSync(0, "utf8"));
let tokenizer;
let config;
if (request.folder) {
  const { TokenizerLoader } = require("@lenml/tokenizers");
  const read = (name) => JSON.parse(fs.readFileSync(path.join(request.folder, name), "utf8"));
  config = read("tokenizer_config.json");
  tokenizer = TokenizerLoader.fromPreTrained({ tokenizerJSON: read("tokenizer.json"), tokenizerConfig: config });
} else {
  config = require(path.join(request.package, "models", "tokenizer_config.json"));
  tokenizer = require(request.package).fromPreTrained();
}
// transformers rebuilds a fast tokenizer's post-processor from tokenizer_config's add_bos_token / add_eos_token when the
// config sets them (update_post_processor), whatever tokenizer.json's post-processor says; the JS port keeps
// tokenizer.json's. DeepSeek-V3 ships a ByteLevel post-processor with add_bos_token: true, so Python (and vLLM) prepend
// its BOS there and the port does not.
const flags = "add_bos_token" in config || "add_eos_token" in config;
const encode = (text) => {
  if (!request.add_special_tokens || !flags)
    return Array.from(tokenizer.encode(text, { add_special_tokens: request.add_special_tokens }));
  const ids = Array.from(tokenizer.encode(text, { add_special_tokens: false }));
  if (config.add_bos_token && tokenizer.bos_token_id != null)
    ids.unshift(tokenizer.bos_token_id);
  if (config.add_eos_token && tokenizer.eos_token_id != null)
    ids.push(tokenizer.eos_token_id);
  return ids;
};
const ids = request.texts.map(encode);
// The text each id list decodes to, special tokens skipped (what a client is shown) and kept (what /detokenize shows).
const decode = (skip) => ids.map((list) => (list.length === 0 ? "" : tokenizer.decode(list, { skip_special_tokens: skip })));
process.stdout.write(JSON.stringify({ ids, texts: decode(true), texts_with_specials: decode(false) }));
