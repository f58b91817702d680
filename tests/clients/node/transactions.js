// KafkaJS's transactional producer, for tests/it/transactions.rs.
//
//   node transactions.js BOOTSTRAP TOPIC GROUP
//
// Creates TOPIC (one partition) and, with `producer({ transactionalId, idempotent: true,
// maxInFlightRequests: 1 })`, runs three transactions: one sends c1, c2 and the offset 2 of
// TOPIC/0 for GROUP (transaction.sendOffsets) and commits; one sends a1 and the offset 99 and
// aborts; one sends c3 and commits. GROUP's committed offset must then be 2 (KafkaJS's admin
// fetchOffsets). Prints "PASS kafkajs"; the test then checks with a read_committed consumer
// (tests/clients/transactions.py `expect TOPIC c1,c2,c3 c1,c2,a1,c3`). A failure prints one line,
// "FAIL kafkajs: <what>", and exits 1.
'use strict'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, logLevel } = require('kafkajs')

// KafkaJS logs to stdout by default; keep stdout for the verdict.
const toStderr = () => ({ namespace, level, log }) => {
  process.stderr.write(`kafkajs ${namespace} ${level}: ${log.message} ${log.error || ''}\n`)
}

async function main () {
  const [bootstrap, topic, group] = process.argv.slice(2)
  const kafka = new Kafka({ clientId: 'sluice-transactions', brokers: [bootstrap], logLevel: logLevel.WARN, logCreator: toStderr })

  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })

  const producer = kafka.producer({ transactionalId: `${topic}-txn`, idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const runs = [
    { values: ['c1', 'c2'], offset: '2', commit: true },
    { values: ['a1'], offset: '99', commit: false },
    { values: ['c3'], offset: null, commit: true }
  ]
  for (const run of runs) {
    const transaction = await producer.transaction()
    const results = await transaction.send({ topic, messages: run.values.map(value => ({ value, partition: 0 })) })
    for (const r of results) {
      if (r.errorCode !== 0) throw new Error(`send ${run.values}: error ${r.errorCode}`)
    }
    if (run.offset !== null) {
      await transaction.sendOffsets({ consumerGroupId: group, topics: [{ topic, partitions: [{ partition: 0, offset: run.offset }] }] })
    }
    if (run.commit) await transaction.commit()
    else await transaction.abort()
  }
  await producer.disconnect()

  const offsets = await admin.fetchOffsets({ groupId: group, topics: [topic] })
  await admin.disconnect()
  const committed = offsets[0].partitions.find(p => p.partition === 0)
  if (!committed || committed.offset !== '2') {
    throw new Error(`the group's offset is ${committed && committed.offset}: the committed transaction's was 2`)
  }
  process.stdout.write('PASS kafkajs\n')
}

main().catch(e => {
  process.stderr.write(`${e && e.stack}\n`)
  process.stdout.write(`FAIL kafkajs: ${e && e.name}: ${e && e.message}\n`, () => process.exit(1))
})
