"""aiokafka against the Kafka face: one scenario per run, results as JSON lines.

Usage: aiokafka_client.py --bootstrap HOST:PORT --scenario SCENARIO --topic T [...]; see common.parse_args.
(Not named aiokafka.py, which would shadow the library.)
"""

import asyncio
import logging
import os

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from common import emit, parse_args, summarize, text, time_left

SCENARIOS = ["produce", "consume", "group", "group-resume", "offsets-for-times", "idempotent", "create-topics"]
# Short timeouts, so that a failure shows in seconds rather than minutes.
BASE = {"request_timeout_ms": 10000, "retry_backoff_ms": 100}


async def produce(args, values, **extra):
    """Produces `values` (partition, key, value) with `extra` settings; returns (acked, errors)."""
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, **BASE, **extra)
    await producer.start()
    try:
        futures = [await producer.send(args.topic[0], value=value.encode(), key=key and key.encode(),
                                       partition=partition)
                   for partition, key, value in values]
        done, pending = await asyncio.wait(futures, timeout=time_left(args))
    finally:
        await producer.stop()
    errors = [repr(f.exception()) for f in done if f.exception() is not None]
    errors += ["not delivered in time"] * len(pending)
    return len(done) - len([f for f in done if f.exception() is not None]), summarize(errors)


async def scenario_produce(args):
    for codec in args.codecs.split(","):
        values = [(i % args.partitions, f"k{i}", f"{codec}-{i}") for i in range(args.count)]
        acked, errors = await produce(args, values, compression_type=None if codec == "none" else codec,
                                      linger_ms=20)
        emit("produced", codec=codec, acked=acked, errors=errors)


def emit_record(record, member=None):
    emit("message", member=member, partition=record.partition, offset=record.offset, value=text(record.value),
         key=text(record.key), timestamp=record.timestamp)


async def scenario_consume(args):
    consumer = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None, enable_auto_commit=False,
                                **BASE)
    await consumer.start()
    partitions = [TopicPartition(args.topic[0], p) for p in range(args.partitions)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    got = 0
    while got < args.count and time_left(args) > 0:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            for record in records:
                emit_record(record)
                got += 1
    await consumer.stop()
    emit("done", count=got)


class Assignments(ConsumerRebalanceListener):
    """Prints and keeps a member's assignment."""

    def __init__(self, name, assignments):
        self.name, self.assignments = name, assignments

    async def on_partitions_revoked(self, revoked):
        self.assignments[self.name] = []
        emit("revoked", member=self.name, partitions=sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned):
        self.assignments[self.name] = sorted(tp.partition for tp in assigned)
        emit("assigned", member=self.name, partitions=self.assignments[self.name])


async def group_member(args, name, assignments):
    """A consumer in the group that commits what it has handled before it polls again."""
    consumer = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, group_id=args.group, enable_auto_commit=False,
                                auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=500,
                                **BASE)
    consumer.subscribe([args.topic[0]], listener=Assignments(name, assignments))
    await consumer.start()
    return consumer


async def poll_once(consumer, name, timeout_ms):
    """Polls once; the records are printed, then committed. Returns how many."""
    got = 0
    for records in (await consumer.getmany(timeout_ms=timeout_ms, max_records=20)).values():
        for record in records:
            emit_record(record, name)
            got += 1
    if got:
        await consumer.commit()
    return got


def stable(assignments, partitions):
    """Both members hold partitions and, together, all of them once."""
    a, b = assignments.get("a", []), assignments.get("b", [])
    return a and b and sorted(a + b) == list(range(partitions))


async def scenario_group(args):
    assignments = {}
    a = await group_member(args, "a", assignments)
    got = 0
    while got < args.count and time_left(args) > 0:
        got += await poll_once(a, "a", 200)
    b = await group_member(args, "b", assignments)
    while not stable(assignments, args.partitions) and time_left(args) > 0:
        for consumer, name in ((a, "a"), (b, "b")):
            got += await poll_once(consumer, name, 50)
    emit("stable", assignments=assignments)
    values = [(i % args.partitions, f"k{i}", f"w2-{i}") for i in range(args.count2)]
    acked, errors = await produce(args, values, linger_ms=5)
    emit("produced", acked=acked, errors=errors)
    while got < args.count + args.count2 and time_left(args) > 0:
        for consumer, name in ((a, "a"), (b, "b")):
            got += await poll_once(consumer, name, 50)
    offsets = {str(p): await a.committed(TopicPartition(args.topic[0], p)) for p in range(args.partitions)}
    emit("committed", offsets={p: -1001 if o is None else o for p, o in offsets.items()})
    await a.stop()
    await b.stop()
    emit("done", count=got)


async def scenario_group_resume(args):
    c = await group_member(args, "c", {})
    got = 0
    while got < args.count and time_left(args) > 0:
        got += await poll_once(c, "c", 200)
    await c.stop()
    emit("done", count=got)


async def scenario_offsets_for_times(args):
    consumer = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None, **BASE)
    await consumer.start()
    partitions = [TopicPartition(args.topic[0], p) for p in range(args.partitions)]
    for ts in (int(t) for t in args.timestamps.split(",")):
        found = await consumer.offsets_for_times({tp: ts for tp in partitions})
        for tp, at in sorted(found.items()):
            emit("offset", timestamp=ts, partition=tp.partition, offset=-1 if at is None else at.offset,
                 found_timestamp=None if at is None else at.timestamp)
    lows, highs = await consumer.beginning_offsets(partitions), await consumer.end_offsets(partitions)
    for tp in partitions:
        emit("watermarks", partition=tp.partition, low=lows[tp], high=highs[tp])
    await consumer.stop()


async def scenario_idempotent(args):
    values = [(0, None, f"idem-{i}") for i in range(args.count)]
    acked, errors = await produce(args, values, enable_idempotence=True, linger_ms=2, max_batch_size=200)
    emit("produced", acked=acked, errors=errors)


async def scenario_create_topics(args):
    admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=10000)
    await admin.start()
    for spec in args.topic:
        name, engine = spec.split(":")
        topic = NewTopic(name, num_partitions=args.partitions, replication_factor=1,
                         topic_configs={"janus.engine": engine})
        try:
            answer = await admin.create_topics([topic], timeout_ms=10000)
            codes = [t[1] for t in getattr(answer, "topic_errors", getattr(answer, "topics", []))]
            emit("created", topic=name, error=None if all(c == 0 for c in codes) else repr(answer))
        except Exception as e:  # noqa: BLE001 - the test prints whatever went wrong
            emit("created", topic=name, error=repr(e))
    await admin.close()


def main():
    if os.environ.get("KAFKA_CLIENT_DEBUG"):
        logging.basicConfig(level=logging.DEBUG)
    args = parse_args(SCENARIOS)
    asyncio.run(globals()["scenario_" + args.scenario.replace("-", "_")](args))


if __name__ == "__main__":
    main()
