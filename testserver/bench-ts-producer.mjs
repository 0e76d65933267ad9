// Benchmark row 4 (make bench): the official TypeScript IdempotentProducer
// appends --count messages to a fresh JSON stream with its default
// options, fire-and-forget, then flushes. Every message is --template with
// __UUID__ replaced by a fresh UUID, so it sends the same bytes as the Go
// rows. With --server-pid it also measures the server's CPU over the same
// interval. Prints one JSON line:
// {"messages","seconds","cpuSeconds","serverCpuSeconds","errors","firstError"}.
//
// Usage: node bench-ts-producer.mjs --url URL --count N --template JSON [--server-pid PID]
import { DurableStream, IdempotentProducer } from "@durable-streams/client"
import { randomUUID } from "node:crypto"
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    count: { type: "string" },
    template: { type: "string" },
    "server-pid": { type: "string" },
  },
})
const count = Number(values.count)
if (!values.url || !values.template || !(count > 0)) {
  process.stderr.write("usage: --url URL --count N --template JSON\n")
  process.exit(2)
}

const [before, after] = values.template.split("__UUID__")
const messages = new Array(count)
for (let i = 0; i < count; i++) messages[i] = before + randomUUID() + after

const stream = await DurableStream.create({ url: values.url, contentType: "application/json" })
let errors = 0
let firstError
const producer = new IdempotentProducer(stream, `bench-ts-${randomUUID()}`, {
  onError: (err) => {
    errors++
    firstError ??= String(err)
  },
})

// utime + stime of a process, in seconds (USER_HZ is 100 on Linux).
function processCpuSeconds(pid) {
  if (!pid) return 0
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(fields[11]) + Number(fields[12])) / 100
}

const serverPid = values["server-pid"]
const server0 = processCpuSeconds(serverPid)
const cpu0 = process.cpuUsage()
const t0 = performance.now()
for (const m of messages) producer.append(m)
await producer.flush()
const seconds = (performance.now() - t0) / 1000
const cpu = process.cpuUsage(cpu0)
const serverCpuSeconds = processCpuSeconds(serverPid) - server0
await producer.detach()

process.stdout.write(
  JSON.stringify({ messages: count, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, serverCpuSeconds, errors, firstError }) + "\n",
)
