// Reads a JSON-mode stream of CloudEvents (CloudEventsMarshaler's output)
// and builds every element into an event with the npm package
// cloudevents, an independent implementation of the spec, in strict mode,
// which validates attribute names, types and values. Prints one
// JSON line per event: {"id","type","source","time","data_base64" or
// "data", "ext": {extension attributes}}, or {"error": "..."}.
//
// Usage: node ce-parse.mjs --url URL
import { CloudEvent } from "cloudevents"
import { parseArgs } from "node:util"

const { values } = parseArgs({ options: { url: { type: "string" } } })
if (!values.url) {
  process.stderr.write("usage: --url URL\n")
  process.exit(2)
}
const res = await fetch(values.url + "?offset=-1")
if (!res.ok) throw new Error(`GET ${values.url}: ${res.status}`)
const spec = new Set(["specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time", "data", "data_base64"])
for (const element of await res.json()) {
  try {
    const ev = new CloudEvent(element, true)
    ev.validate()
    const out = { id: ev.id, type: ev.type, source: ev.source, time: ev.time, ext: {} }
    if (ev.data_base64 !== undefined) out.data_base64 = ev.data_base64
    else out.data = ev.data
    for (const [k, v] of Object.entries(ev)) if (!spec.has(k)) out.ext[k] = v
    process.stdout.write(JSON.stringify(out) + "\n")
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: String(err), errors: err.errors }) + "\n")
  }
}
