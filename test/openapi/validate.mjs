// Validates an OpenAPI document (a file path, or "-" for stdin) against the official OpenAPI
// JSON schema for its version with @seriousme/openapi-schema-validator (npm, locked).
// Prints "valid <version>" and exits 0, or prints the errors as JSON and exits 1.
import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate.mjs FILE|-");
  process.exit(2);
}
const text = readFileSync(file === "-" ? 0 : file, "utf8");
const validator = new Validator();
const res = await validator.validate(JSON.parse(text));
if (res.valid) {
  console.log(`valid ${validator.version}`);
  process.exit(0);
}
console.log(JSON.stringify(res.errors, null, 2));
process.exit(1);
