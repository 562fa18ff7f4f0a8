"""confluent-kafka (librdkafka) against the Kafka face: one scenario per run, results as JSON lines.

Usage: confluent.py --bootstrap HOST:PORT --scenario SCENARIO --topic T [...]; see common.parse_args.
"""

import os

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import emit, log, parse_args, summarize, text, time_left

SCENARIOS = ["produce", "consume", "group", "group-resume", "offsets-for-times", "idempotent", "create-topics"]
# Short timeouts, so that a failure shows in seconds rather than minutes.
BASE = {"socket.timeout.ms": 10000, "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500}
if os.environ.get("KAFKA_CLIENT_DEBUG"):
    BASE["debug"] = "protocol,broker,cgrp"


def produce(args, values, extra):
    """Produces `values` (partition, key, value) with `extra` settings; returns (acked, errors)."""
    acked, errors = [0], []

    def delivered(err, msg):
        if err is None:
            acked[0] += 1
        else:
            errors.append(str(err))

    producer = Producer({**BASE, "bootstrap.servers": args.bootstrap, "message.timeout.ms": 15000, **extra})
    for partition, key, value in values:
        while True:
            try:
                producer.produce(args.topic[0], value=value, key=key, partition=partition, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(time_left(args))
    if left:
        errors.append(f"{left} messages not delivered in time")
    return acked[0], summarize(errors)


def scenario_produce(args):
    for codec in args.codecs.split(","):
        values = [(i % args.partitions, f"k{i}", f"{codec}-{i}") for i in range(args.count)]
        acked, errors = produce(args, values, {"compression.type": codec, "linger.ms": 20})
        emit("produced", codec=codec, acked=acked, errors=errors)


def emit_message(msg, member=None):
    emit("message", member=member, partition=msg.partition(), offset=msg.offset(), value=text(msg.value()),
         key=text(msg.key()), timestamp=msg.timestamp()[1])


def scenario_consume(args):
    consumer = Consumer({**BASE, "bootstrap.servers": args.bootstrap, "group.id": "assign-only",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(args.topic[0], p, -2) for p in range(args.partitions)])  # -2: beginning
    got = 0
    while got < args.count and time_left(args) > 0:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            log("consume error:", msg.error())
            continue
        emit_message(msg)
        got += 1
    consumer.close()
    emit("done", count=got)


def group_member(args, name, assignments):
    """A consumer in the group that commits each message it has handled before it polls again."""
    def on_assign(consumer, partitions):
        assignments[name] = sorted(p.partition for p in partitions)
        emit("assigned", member=name, partitions=assignments[name])

    def on_revoke(consumer, partitions):
        assignments[name] = []
        emit("revoked", member=name, partitions=sorted(p.partition for p in partitions))

    consumer = Consumer({**BASE, "bootstrap.servers": args.bootstrap, "group.id": args.group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                         "partition.assignment.strategy": "range"})
    consumer.subscribe([args.topic[0]], on_assign=on_assign, on_revoke=on_revoke)
    return consumer


def poll_one(consumer, name, timeout):
    """Polls once; a message is printed and committed (synchronously). Returns its value or None."""
    msg = consumer.poll(timeout)
    if msg is None:
        return None
    if msg.error():
        log(name, "error:", msg.error())
        return None
    emit_message(msg, name)
    consumer.commit(message=msg, asynchronous=False)
    return text(msg.value())


def stable(assignments, partitions):
    """Both members hold partitions and, together, all of them once."""
    a, b = assignments.get("a", []), assignments.get("b", [])
    return a and b and sorted(a + b) == list(range(partitions))


def scenario_group(args):
    assignments = {}
    a = group_member(args, "a", assignments)
    got = 0
    while got < args.count and time_left(args) > 0:
        got += poll_one(a, "a", 0.2) is not None
    b = group_member(args, "b", assignments)
    while not stable(assignments, args.partitions) and time_left(args) > 0:
        for consumer, name in ((a, "a"), (b, "b")):
            got += poll_one(consumer, name, 0.05) is not None
    emit("stable", assignments=assignments)
    values = [(i % args.partitions, f"k{i}", f"w2-{i}") for i in range(args.count2)]
    acked, errors = produce(args, values, {"linger.ms": 5})
    emit("produced", acked=acked, errors=errors)
    while got < args.count + args.count2 and time_left(args) > 0:
        for consumer, name in ((a, "a"), (b, "b")):
            got += poll_one(consumer, name, 0.05) is not None
    committed = a.committed([TopicPartition(args.topic[0], p) for p in range(args.partitions)], timeout=5)
    emit("committed", offsets={str(tp.partition): tp.offset for tp in committed})
    a.close()
    b.close()
    emit("done", count=got)


def scenario_group_resume(args):
    assignments = {}
    c = group_member(args, "c", assignments)
    got = 0
    while got < args.count and time_left(args) > 0:
        got += poll_one(c, "c", 0.2) is not None
    c.close()
    emit("done", count=got)


def scenario_offsets_for_times(args):
    consumer = Consumer({**BASE, "bootstrap.servers": args.bootstrap, "group.id": "assign-only"})
    for ts in (int(t) for t in args.timestamps.split(",")):
        asked = [TopicPartition(args.topic[0], p, ts) for p in range(args.partitions)]
        for tp in consumer.offsets_for_times(asked, timeout=time_left(args)):
            emit("offset", timestamp=ts, partition=tp.partition, offset=tp.offset)
    for p in range(args.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(args.topic[0], p), timeout=time_left(args))
        emit("watermarks", partition=p, low=low, high=high)
    consumer.close()


def scenario_idempotent(args):
    values = [(0, None, f"idem-{i}") for i in range(args.count)]
    extra = {"enable.idempotence": True, "linger.ms": 2, "batch.num.messages": 10, "retry.backoff.ms": 100}
    acked, errors = produce(args, values, extra)
    emit("produced", acked=acked, errors=errors)


def scenario_create_topics(args):
    admin = AdminClient({**BASE, "bootstrap.servers": args.bootstrap})
    specs = [t.split(":") for t in args.topic]
    new = [NewTopic(name, num_partitions=args.partitions, replication_factor=1, config={"janus.engine": engine})
           for name, engine in specs]
    for name, future in admin.create_topics(new, operation_timeout=10, request_timeout=10).items():
        try:
            future.result(timeout=time_left(args))
            emit("created", topic=name, error=None)
        except KafkaException as e:
            emit("created", topic=name, error=str(e))


def main():
    args = parse_args(SCENARIOS)
    globals()["scenario_" + args.scenario.replace("-", "_")](args)


if __name__ == "__main__":
    main()
