// Validates an AsyncAPI document with @asyncapi/parser: exits 1 and prints the diagnostics when
// the parser reports an error. Usage: node asyncapi.mjs <file>
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';

const file = process.argv[2];
const { document, diagnostics } = await new Parser().parse(readFileSync(file, 'utf8'));
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  console.error(`${file}: [${['error', 'warning', 'info', 'hint'][d.severity]}] ${d.message} at ${JSON.stringify(d.path)}`);
}
if (!document || errors.length > 0) {
  console.error(`${file}: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(`${file}: valid AsyncAPI ${document.version()} (${diagnostics.length} warnings or hints)`);
