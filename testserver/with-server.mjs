// Runs a command against a Durable Streams reference server started for it:
//
//   node testserver/with-server.mjs go run ./_examples/basic
//
// It installs the pinned server from package-lock.json if it is not
// installed yet (npm ci; not when DURABLE_STREAMS_NO_INSTALL is set, as
// the test suite does), starts it in memory on a free port of 127.0.0.1,
// runs the command with DURABLE_STREAMS_URL set to the server's base URL
// (streams live under <base>/v1/stream/), stops the server when the
// command ends and exits with the command's status. Ctrl-C reaches the
// command directly (same process group); the server stops after it.
import { spawn, spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"

const here = fileURLToPath(new URL(".", import.meta.url))
const command = process.argv.slice(2)
if (command.length === 0) {
  process.stderr.write("usage: node testserver/with-server.mjs COMMAND [ARG...]\n")
  process.exit(2)
}

if (!existsSync(new URL("./node_modules/@durable-streams/server/package.json", import.meta.url))) {
  if (process.env.DURABLE_STREAMS_NO_INSTALL) {
    // Set by the test suite: a test never installs anything.
    process.stderr.write(`with-server: the reference server is not installed: run npm ci --prefix ${here}\n`)
    process.exit(1)
  }
  process.stderr.write(`with-server: installing the pinned reference server (npm ci --prefix ${here})\n`)
  // npm's output goes to stderr, so that stdout is the command's alone.
  const npm = spawnSync("npm", ["ci", "--prefix", here], {
    stdio: ["ignore", 2, 2],
    shell: process.platform === "win32",
  })
  if (npm.status !== 0) {
    process.stderr.write("with-server: npm ci failed (needs Node.js >= 18 and npm)\n")
    process.exit(1)
  }
}

const { DurableStreamTestServer } = await import("@durable-streams/server")
const server = new DurableStreamTestServer({ port: 0, host: "127.0.0.1" })
const base = (await server.start()).replace(/\/+$/, "")
process.stderr.write(
  `with-server: reference server at ${base}; streams live under ${base}/v1/stream/ (DURABLE_STREAMS_URL=${base})\n`,
)

const child = spawn(command[0], command.slice(1), {
  stdio: "inherit",
  env: { ...process.env, DURABLE_STREAMS_URL: base },
  shell: process.platform === "win32",
})

// The terminal sends Ctrl-C to the command too: wait for it to end. Other
// termination requests are passed on.
process.on("SIGINT", () => {})
process.on("SIGTERM", () => child.kill("SIGTERM"))

const status = await new Promise((resolve) => {
  child.on("error", (err) => {
    process.stderr.write(`with-server: ${command[0]}: ${err.message}\n`)
    resolve(127)
  })
  child.on("exit", (code, signal) => resolve(code ?? 128 + (signalNumber(signal) || 1)))
})

// stop() waits for open connections; the command's ended with it, so this
// is quick, but never hang on it.
const hardStop = setTimeout(() => process.exit(status), 3000)
hardStop.unref()
try {
  await server.stop()
} catch (err) {
  process.stderr.write(`with-server: stop: ${err}\n`)
}
process.exit(status)

function signalNumber(signal) {
  return { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 }[signal]
}
