// KafkaJS's idempotent producer, for tests/it/idempotence.rs: the counterpart of the producers
// in tests/clients/idempotence.py, with the same output, so that its `verify` checks the result.
//
//   node idempotent-producer.js BOOTSTRAP TOPIC PARTITIONS N ACKS_FILE [RATE]
//
// Creates TOPIC, sends records 0..N-1 with key "k<i>" and value "<i>" to partition i % PARTITIONS,
// prints "acked <count>" as acknowledgements arrive, writes one "partition offset i" line per
// acknowledged record to ACKS_FILE and prints "PRODUCED <n>". A failure prints one line,
// "FAIL kafkajs: <what>", and exits 1.
//
// The producer is `producer({ idempotent: true, maxInFlightRequests: 5 })` with acks=-1 (which
// KafkaJS's idempotent mode requires) and its default retries (unlimited when idempotent). Each
// send() is awaited before the next: KafkaJS's idempotent producer holds a lock per broker, so
// one Produce is in flight anyway, and concurrent send() calls may be retried in another order,
// which would break the per-partition order the test checks.
'use strict'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

const PROGRESS_EVERY = 1000
const RECORDS_PER_SEND = 400

// KafkaJS logs to stdout by default; keep stdout for the progress lines.
const toStderr = () => ({ namespace, level, log }) => {
  process.stderr.write(`kafkajs ${namespace} ${level}: ${log.message} ${log.error || ''}\n`)
}

async function main () {
  const [bootstrap, topic, partitionsArg, nArg, acksPath, rateArg] = process.argv.slice(2)
  const partitions = Number(partitionsArg)
  const n = Number(nArg)
  const rate = Number(rateArg || 0)
  const kafka = new Kafka({ clientId: 'sluice-idempotence', brokers: [bootstrap], logLevel: logLevel.WARN, logCreator: toStderr })

  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true })
  await admin.disconnect()

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 5 })
  await producer.connect()
  const acks = []
  const started = Date.now()
  for (let first = 0; first < n; first += RECORDS_PER_SEND) {
    if (rate > 0) {
      const ahead = started + (first / rate) * 1000 - Date.now()
      if (ahead > 0) await new Promise(resolve => setTimeout(resolve, ahead))
    }
    const messages = []
    for (let i = first; i < Math.min(n, first + RECORDS_PER_SEND); i++) {
      messages.push({ key: `k${i}`, value: `${i}`, partition: i % partitions })
    }
    const results = await producer.send({ topic, acks: -1, messages })
    const baseOffsets = new Map()
    for (const r of results) {
      if (r.errorCode !== 0) throw new Error(`partition ${r.partition}: error ${r.errorCode}`)
      baseOffsets.set(r.partition, BigInt(r.baseOffset))
    }
    // A partition's records of one send are one batch: the k-th is at baseOffset + k.
    const next = new Map()
    for (const m of messages) {
      const base = baseOffsets.get(m.partition)
      if (base === undefined) throw new Error(`no answer for partition ${m.partition}`)
      const k = next.get(m.partition) || 0n
      next.set(m.partition, k + 1n)
      acks.push(`${m.partition} ${base + k} ${m.value}\n`)
      if (acks.length % PROGRESS_EVERY === 0) process.stdout.write(`acked ${acks.length}\n`)
    }
  }
  await producer.disconnect()
  fs.writeFileSync(acksPath, acks.join(''))
  if (acks.length !== n) throw new Error(`${acks.length} of ${n} records acknowledged`)
  process.stdout.write(`acked ${acks.length}\nPRODUCED ${n}\n`)
}

main().catch(e => {
  process.stderr.write(`${e && e.stack}\n`)
  process.stdout.write(`FAIL kafkajs: ${e && e.name}: ${e && e.message}\n`, () => process.exit(1))
})
