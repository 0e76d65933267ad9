// Reads a JSON-mode stream written by JSONMarshaler with the official
// TypeScript client and prints, one JSON line per message, what a
// JavaScript application gets by reading `payload`, the one field it
// needs: {"uuid": ..., "payload": <value, or absent>}.
//
// Usage: node ts-read-payloads.mjs --url URL
import { stream } from "@durable-streams/client"
import { parseArgs } from "node:util"

const { values } = parseArgs({ options: { url: { type: "string" } } })
if (!values.url) {
  process.stderr.write("usage: --url URL\n")
  process.exit(2)
}
const res = await stream({ url: values.url, offset: "-1", live: false })
for (const msg of await res.json()) {
  process.stdout.write(JSON.stringify({ uuid: msg.uuid, payload: msg.payload }) + "\n")
}
