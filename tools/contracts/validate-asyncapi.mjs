// Parse and validate an AsyncAPI document; exit 1 on any error-severity diagnostic.
// Usage: node validate-asyncapi.mjs PATH
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const path = process.argv[2];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(await readFile(path, "utf8"), {
  source: path,
});
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  const level = ["error", "warning", "info", "hint"][d.severity];
  console.log(`${level} ${d.code} at ${d.path.join(".")}: ${d.message}`);
}
if (errors.length > 0 || document === undefined) {
  console.log(`INVALID: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(
  `VALID: AsyncAPI ${document.version()}, ${document.channels().length} channel(s), ` +
    `${document.operations().length} operation(s), ${document.allMessages().length} message(s)`,
);
