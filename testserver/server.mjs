// Launches the pinned Durable Streams reference server for tests, examples
// and benchmarks. It prints exactly one line, "READY <base-url>", once it
// listens, and exits when told to (SIGTERM/SIGINT) or when its parent goes
// away (stdin closes), so a killed test binary never leaves a server behind.
//
// Usage: node server.mjs [--port N] [--host H] [--data-dir DIR] [--long-poll-ms N]
import { DurableStreamTestServer } from "@durable-streams/server"
import { parseArgs } from "node:util"

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
    "data-dir": { type: "string" },
    "long-poll-ms": { type: "string", default: "30000" },
    "watch-stdin": { type: "boolean", default: false },
  },
})

const server = new DurableStreamTestServer({
  port: Number(values.port),
  host: values.host,
  dataDir: values["data-dir"],
  longPollTimeout: Number(values["long-poll-ms"]),
})

const url = await server.start()

// 0.3.7's stop() waits for open long-polls; remember every socket so that
// shutdown can cut them after a short grace instead of hanging.
const sockets = new Set()
const http = server.server
http?.on("connection", (socket) => {
  sockets.add(socket)
  socket.on("close", () => sockets.delete(socket))
})

process.stdout.write(`READY ${url}\n`)
if (!values["watch-stdin"]) {
  // Run by hand (make up): say where the streams are, which the bare base
  // URL above does not.
  process.stderr.write(`streams live under ${url.replace(/\/+$/, "")}/v1/stream/; DURABLE_STREAMS_URL=${url}\n`)
}

let stopping = false
async function shutdown(code) {
  if (stopping) return
  stopping = true
  const grace = setTimeout(() => {
    for (const socket of sockets) socket.destroy()
  }, 300)
  const hardStop = setTimeout(() => process.exit(code), 3000)
  try {
    await server.stop()
  } catch (err) {
    process.stderr.write(`stop: ${err}\n`)
  }
  clearTimeout(grace)
  clearTimeout(hardStop)
  process.exit(code)
}

process.on("SIGTERM", () => shutdown(0))
process.on("SIGINT", () => shutdown(0))

if (values["watch-stdin"]) {
  // The parent holds our stdin open; EOF means it exited, however it died.
  process.stdin.on("end", () => shutdown(0))
  process.stdin.on("error", () => shutdown(0))
  process.stdin.resume()
}
