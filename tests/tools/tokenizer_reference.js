#!/usr/bin/env node
// Reference token ids for tests/tokenizer_parity_test.cpp, from the JavaScript tokenizer of
// @lenml/tokenizers (a port of transformers.js) run on the same tokenizer.json and
// tokenizer_config.json files the C++ tokenizer reads.
//   node tokenizer_reference.js LENML_DIR TEXTS_JSON OUT_JSON NAME...
// LENML_DIR holds tokenizers/ and tokenizer-NAME/models/{tokenizer,tokenizer_config}.json; a NAME
// that is a directory holding those two files is read from there instead;
// TEXTS_JSON is a list of strings; OUT_JSON gets {NAME: [[id, ...] per text], ...}, encoded
// without special tokens (no BOS).
'use strict';
const fs = require('fs');
const path = require('path');

const [lenml, textsFile, outFile, ...names] = process.argv.slice(2);
if (!lenml || !textsFile || !outFile || names.length === 0) {
  console.error('usage: tokenizer_reference.js LENML_DIR TEXTS_JSON OUT_JSON NAME...');
  process.exit(2);
}
const { TokenizerLoader } = require(path.resolve(lenml, 'tokenizers'));
const texts = JSON.parse(fs.readFileSync(textsFile, 'utf8'));
const out = {};
for (const name of names) {
  const models = fs.existsSync(path.join(name, 'tokenizer.json'))
    ? name : path.join(lenml, 'tokenizer-' + name, 'models');
  const tokenizer = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(models, 'tokenizer.json'), 'utf8')),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(models, 'tokenizer_config.json'), 'utf8')),
  });
  out[name] = texts.map((t) => tokenizer.encode(t, { add_special_tokens: false }));
}
fs.writeFileSync(outFile, JSON.stringify(out));
