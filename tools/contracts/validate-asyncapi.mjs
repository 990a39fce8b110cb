// Parse and validate AsyncAPI documents with the official parser.
// Usage: node validate-asyncapi.mjs PATH...   (one node start for many documents)
// Prints one line per document: VALID or INVALID, then its diagnostics; exits 1 if any is invalid.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
let invalid = 0;
for (const path of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(await readFile(path, "utf8"), {
    source: path,
  });
  const errors = diagnostics.filter((d) => d.severity === 0);
  if (errors.length > 0 || document === undefined) {
    invalid += 1;
    console.log(`INVALID ${path}: ${errors.length} error(s)`);
  } else {
    console.log(
      `VALID ${path}: AsyncAPI ${document.version()}, ${document.channels().length} channel(s), ` +
        `${document.operations().length} operation(s), ${document.allMessages().length} message(s)`,
    );
  }
  for (const d of diagnostics) {
    const level = ["error", "warning", "info", "hint"][d.severity];
    console.log(`  ${level} ${d.code} at ${d.path.join(".")}: ${d.message}`);
  }
}
process.exit(invalid > 0 ? 1 : 0);
