// The committed AsyncAPI documents checked by the official AsyncAPI parser (@asyncapi/parser, not
// written here): the AsyncAPI 3 JSON Schema, the $refs, and the parser's Spectral ruleset.
//
// Usage: node validate.mjs <document.json>...
// Prints one JSON object: {"<path>": [{"severity": "error"|"warning"|"information"|"hint",
// "code": ..., "message": ..., "path": "..."}]} with every diagnostic, and whether a document came out
// parsed ("parsed": {"<path>": bool}). Exits 0 whatever it found: the caller decides what fails.
import {readFileSync} from 'node:fs';

import {Parser} from '@asyncapi/parser';

const SEVERITIES = ['error', 'warning', 'information', 'hint'];

const parser = new Parser();
const diagnostics = {};
const parsed = {};
for (const path of process.argv.slice(2)) {
  const {document, diagnostics: found} = await parser.parse(readFileSync(path, 'utf8'), {source: path});
  parsed[path] = document !== undefined;
  diagnostics[path] = found.map((d) => ({
    severity: SEVERITIES[d.severity] ?? String(d.severity),
    code: d.code,
    message: d.message,
    path: d.path.join('/'),
  }));
}
process.stdout.write(JSON.stringify({diagnostics, parsed}, null, 1) + '\n');
