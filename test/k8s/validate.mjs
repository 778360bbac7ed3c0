// Validates Kubernetes manifests (multi-document YAML files given as arguments) against the
// Kubernetes API's schemas: each document's apiVersion/kind selects its kubernetes-models class,
// whose validate() runs the ajv-compiled OpenAPI schema of that kind (types, required fields,
// enums, formats, nested objects). Prints one line per document; exits 1 when any is invalid or
// of a kind it does not know.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const dir = group === "" ? version : `${group}/${version}`;
  try {
    const mod = await import(`kubernetes-models/${dir}/${kind}`);
    return mod[kind];
  } catch {
    return null;
  }
}

let failed = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      console.log(`${file}: YAML error: ${doc.errors[0].message}`);
      failed++;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null) continue; // an empty document
    const where = `${file}: ${obj.kind ?? "?"} ${obj.metadata?.name ?? "?"}`;
    const Model = typeof obj.apiVersion === "string" && typeof obj.kind === "string"
      ? await modelFor(obj.apiVersion, obj.kind) : null;
    if (Model === null) {
      console.log(`${where}: unknown apiVersion/kind ${obj.apiVersion}/${obj.kind}`);
      failed++;
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(`${where}: valid (${obj.apiVersion})`);
    } catch (e) {
      console.log(`${where}: INVALID: ${e.message}`);
      failed++;
    }
  }
}
process.exit(failed ? 1 : 0);
