// kafkajs against the Kafka face: one scenario per run, results as JSON lines on stdout (the Rust test,
// server/tests/it/kafka_clients.rs, asserts on them); kafkajs's own log goes to stderr.
//
// Usage: node kafkajs.js --bootstrap HOST:PORT --scenario SCENARIO --topic T [...] (the options of
// common.py). NODE_PATH points at the node_modules scripts/setup installed.
'use strict'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const lz4 = require('lz4js')
const { ZstdCodec } = require('zstd-codec')

// kafkajs takes its lz4 and zstd codecs from plugins; these two adapters use libraries without a native
// build (lz4js writes and reads LZ4 frames, as Kafka does; zstd-codec is zstd compiled to JavaScript).
const LZ4Codec = () => ({
  async compress (encoder) { return Buffer.from(lz4.compress(encoder.buffer)) },
  async decompress (buffer) { return Buffer.from(lz4.decompress(buffer)) }
})
const zstd = new Promise((resolve) => ZstdCodec.run((z) => resolve(z)))
const ZstdCodecPlugin = () => ({
  async compress (encoder) { return Buffer.from(new (await zstd).Simple().compress(encoder.buffer, 3)) },
  // Streaming, since a frame need not say its decompressed size.
  async decompress (buffer) { return Buffer.from(new (await zstd).Streaming().decompress(buffer)) }
})

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = LZ4Codec
CompressionCodecs[CompressionTypes.ZSTD] = ZstdCodecPlugin

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD
}

function parseArgs (argv) {
  const args = { topic: [], partitions: 1, count: 0, count2: 0, codecs: 'none', group: '', timestamps: '', timeoutS: 20 }
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '').replace(/-(\w)/g, (_, c) => c.toUpperCase())
    const value = argv[i + 1]
    if (name === 'topic') args.topic.push(value)
    else if (['partitions', 'count', 'count2', 'timeoutS'].includes(name)) args[name] = Number(value)
    else args[name] = value
  }
  args.deadline = Date.now() + args.timeoutS * 1000
  return args
}

function emit (event, fields) {
  process.stdout.write(JSON.stringify({ ...fields, event }) + '\n')
}

const timeLeft = (args) => Math.max(0, args.deadline - Date.now())
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function client (args) {
  const level = process.env.KAFKA_CLIENT_DEBUG ? logLevel.DEBUG : logLevel.WARN
  const logCreator = () => ({ namespace, label, log }) => {
    process.stderr.write(`${label} [${namespace}] ${log.message} ${JSON.stringify(log)}\n`)
  }
  return new Kafka({
    clientId: 'janus-test',
    brokers: [args.bootstrap],
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 10 },
    logLevel: level,
    logCreator
  })
}

// Waits until `done()` holds or the deadline passes.
async function until (args, done) {
  while (!done() && timeLeft(args) > 0) await sleep(20)
}

async function produce (args, kafka, values, compression, extra = {}) {
  const producer = kafka.producer({ allowAutoTopicCreation: false, ...extra })
  await producer.connect()
  let acked = 0
  const errors = []
  try {
    const messages = values.map(([partition, key, value]) => ({ partition, key, value }))
    const answer = await producer.send({ topic: args.topic[0], acks: -1, timeout: 10000, compression, messages })
    acked = answer.length > 0 ? messages.length : 0
  } catch (e) {
    errors.push(String(e))
  }
  await producer.disconnect()
  return { acked, errors }
}

async function scenarioProduce (args, kafka) {
  for (const codec of args.codecs.split(',')) {
    const values = []
    for (let i = 0; i < args.count; i++) values.push([i % args.partitions, `k${i}`, `${codec}-${i}`])
    const { acked, errors } = await produce(args, kafka, values, CODECS[codec])
    emit('produced', { codec, acked, errors })
  }
}

function emitMessage (member, partition, message) {
  emit('message', {
    member,
    partition,
    offset: Number(message.offset),
    value: message.value && message.value.toString(),
    key: message.key && message.key.toString(),
    timestamp: Number(message.timestamp)
  })
}

// A member of `args.group` that commits each message once handled; its assignment is kept in
// `assignments[name]`. Returns the consumer and a counter of the messages it got.
async function groupMember (args, kafka, name, assignments) {
  const consumer = kafka.consumer({
    groupId: args.group,
    sessionTimeout: 6000,
    rebalanceTimeout: 10000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 100,
    retry: { retries: 5, initialRetryTime: 100 }
  })
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    assignments[name] = (e.payload.memberAssignment[args.topic[0]] || []).slice().sort((a, b) => a - b)
    emit('assigned', { member: name, partitions: assignments[name] })
  })
  const counter = { got: 0 }
  await consumer.connect()
  await consumer.subscribe({ topics: [args.topic[0]], fromBeginning: true })
  await consumer.run({
    autoCommit: true,
    autoCommitThreshold: 1,
    eachMessage: async ({ partition, message }) => {
      emitMessage(name, partition, message)
      counter.got++
    }
  })
  return { consumer, counter }
}

async function scenarioConsume (args, kafka) {
  const member = await groupMember({ ...args, group: `consume-${args.topic[0]}-${Date.now()}` }, kafka, null, {})
  await until(args, () => member.counter.got >= args.count)
  await member.consumer.disconnect()
  emit('done', { count: member.counter.got })
}

function stable (assignments, partitions) {
  const a = assignments.a || []
  const b = assignments.b || []
  const all = [...a, ...b].sort((x, y) => x - y)
  return a.length > 0 && b.length > 0 && all.length === partitions && all.every((p, i) => p === i)
}

async function scenarioGroup (args, kafka) {
  const assignments = {}
  const a = await groupMember(args, kafka, 'a', assignments)
  await until(args, () => a.counter.got >= args.count)
  const b = await groupMember(args, kafka, 'b', assignments)
  await until(args, () => stable(assignments, args.partitions))
  emit('stable', { assignments })
  const values = []
  for (let i = 0; i < args.count2; i++) values.push([i % args.partitions, `k${i}`, `w2-${i}`])
  emit('produced', await produce(args, kafka, values, CompressionTypes.None))
  const total = () => a.counter.got + b.counter.got
  await until(args, () => total() >= args.count + args.count2)
  const admin = kafka.admin()
  await admin.connect()
  const [committed] = await admin.fetchOffsets({ groupId: args.group, topics: [args.topic[0]] })
  const offsets = {}
  for (const p of committed.partitions) offsets[String(p.partition)] = Number(p.offset)
  emit('committed', { offsets })
  await admin.disconnect()
  await a.consumer.disconnect()
  await b.consumer.disconnect()
  emit('done', { count: total() })
}

async function scenarioGroupResume (args, kafka) {
  const c = await groupMember(args, kafka, 'c', {})
  await until(args, () => c.counter.got >= args.count)
  await c.consumer.disconnect()
  emit('done', { count: c.counter.got })
}

async function scenarioOffsetsForTimes (args, kafka) {
  const admin = kafka.admin()
  await admin.connect()
  for (const ts of args.timestamps.split(',').map(Number)) {
    const found = await admin.fetchTopicOffsetsByTimestamp(args.topic[0], ts)
    for (const p of found.sort((x, y) => x.partition - y.partition)) {
      emit('offset', { timestamp: ts, partition: p.partition, offset: Number(p.offset) })
    }
  }
  const marks = await admin.fetchTopicOffsets(args.topic[0])
  for (const p of marks.sort((x, y) => x.partition - y.partition)) {
    emit('watermarks', { partition: p.partition, low: Number(p.low), high: Number(p.high) })
  }
  await admin.disconnect()
}

async function scenarioIdempotent (args, kafka) {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  await producer.connect()
  let acked = 0
  const errors = []
  // Batches of ten, one request each, so that the cut falls in the middle of the stream.
  for (let i = 0; i < args.count && timeLeft(args) > 0; i += 10) {
    const messages = []
    for (let j = i; j < Math.min(i + 10, args.count); j++) messages.push({ partition: 0, value: `idem-${j}` })
    try {
      await producer.send({ topic: args.topic[0], acks: -1, timeout: 10000, messages })
      acked += messages.length
    } catch (e) {
      errors.push(String(e))
    }
  }
  await producer.disconnect()
  emit('produced', { acked, errors })
}

async function scenarioCreateTopics (args, kafka) {
  const admin = kafka.admin()
  await admin.connect()
  for (const spec of args.topic) {
    const [topic, engine] = spec.split(':')
    try {
      await admin.createTopics({
        timeout: 10000,
        topics: [{ topic, numPartitions: args.partitions, replicationFactor: 1, configEntries: [{ name: 'janus.engine', value: engine }] }]
      })
      emit('created', { topic, error: null })
    } catch (e) {
      emit('created', { topic, error: String(e) })
    }
  }
  await admin.disconnect()
}

const SCENARIOS = {
  produce: scenarioProduce,
  consume: scenarioConsume,
  group: scenarioGroup,
  'group-resume': scenarioGroupResume,
  'offsets-for-times': scenarioOffsetsForTimes,
  idempotent: scenarioIdempotent,
  'create-topics': scenarioCreateTopics
}

async function main () {
  const args = parseArgs(process.argv.slice(2))
  const scenario = SCENARIOS[args.scenario]
  if (!scenario) throw new Error(`unknown scenario ${args.scenario}`)
  await scenario(args, client(args))
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(`kafkajs.js: ${e.stack || e}\n`)
  process.exit(1)
})
