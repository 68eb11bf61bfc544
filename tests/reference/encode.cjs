// Reference token ids from @lenml/tokenizers (a JavaScript port of Hugging Face's tokenizers, independent of Serving),
// for the tokenizer tests. Reads {"package": "...", "texts": ["..."], "add_special_tokens": true} on stdin, writes
// {"ids": [[...], ...]} on stdout.
const fs = require("fs");
const request = JSON.parse(fs.readFileSync(0, "utf8"));
const { fromPreTrained } = require(request.package);
const tokenizer = fromPreTrained();
const ids = request.texts.map((t) => Array.from(tokenizer.encode(t, { add_special_tokens: request.add_special_tokens })));
process.stdout.write(JSON.stringify({ ids }));
