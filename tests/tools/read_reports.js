// The SMART client (npm "fhirclient") reading our reports over HTTP: the server's FHIR
// version from its CapabilityStatement, a DiagnosticReport search by patient identifier,
// and every result the reports reference. Usage: node read_reports.js BASE SYSTEM|VALUE
"use strict";
const { FhirClient } = require("fhirclient");

async function main() {
  const [base, patient] = process.argv.slice(2);
  const client = new FhirClient(base);
  const version = await client.getFhirVersion();
  const search = await client.fhirRequest(
    `DiagnosticReport?subject:identifier=${encodeURIComponent(patient)}`
  );
  const reports = [];
  for (const entry of search.entry || []) {
    const references = await client.getReferences(entry.resource, ["result"]);
    reports.push({ report: entry.resource, results: Object.values(references) });
  }
  process.stdout.write(JSON.stringify({ version, reports }));
}
main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
