"""kafka-python against the Kafka face: one scenario per run, results as JSON lines.

Usage: kafka_python.py --bootstrap HOST:PORT --scenario SCENARIO --topic T [...]; see common.parse_args.
"""

import logging
import os
import threading
import time

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from common import emit, log, parse_args, summarize, text, time_left

SCENARIOS = ["produce", "consume", "group", "group-resume", "offsets-for-times", "idempotent", "create-topics"]
# Short timeouts, so that a failure shows in seconds rather than minutes.
BASE = {"request_timeout_ms": 10000, "reconnect_backoff_ms": 50, "reconnect_backoff_max_ms": 500}


def produce(args, values, **extra):
    """Produces `values` (partition, key, value) with `extra` settings; returns (acked, errors)."""
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, delivery_timeout_ms=15000, **BASE, **extra)
    futures = [producer.send(args.topic[0], value=value.encode(), key=key and key.encode(), partition=partition)
               for partition, key, value in values]
    producer.flush(timeout=time_left(args))
    acked, errors = 0, []
    for future in futures:
        if future.succeeded():
            acked += 1
        elif future.failed():
            errors.append(repr(future.exception))
        else:
            errors.append("not delivered in time")
    producer.close(timeout=5)
    return acked, summarize(errors)


def scenario_produce(args):
    for codec in args.codecs.split(","):
        values = [(i % args.partitions, f"k{i}", f"{codec}-{i}") for i in range(args.count)]
        acked, errors = produce(args, values, compression_type=None if codec == "none" else codec, linger_ms=20)
        emit("produced", codec=codec, acked=acked, errors=errors)


def emit_record(record, member=None):
    emit("message", member=member, partition=record.partition, offset=record.offset, value=text(record.value),
         key=text(record.key), timestamp=record.timestamp)


def scenario_consume(args):
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None, enable_auto_commit=False, **BASE)
    partitions = [TopicPartition(args.topic[0], p) for p in range(args.partitions)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    got = 0
    while got < args.count and time_left(args) > 0:
        for records in consumer.poll(timeout_ms=200).values():
            for record in records:
                emit_record(record)
                got += 1
    consumer.close()
    emit("done", count=got)


class Assignments(ConsumerRebalanceListener):
    """Prints and keeps a member's assignment."""

    def __init__(self, name, assignments):
        self.name, self.assignments = name, assignments

    def on_partitions_revoked(self, revoked):
        self.assignments[self.name] = []
        emit("revoked", member=self.name, partitions=sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned):
        self.assignments[self.name] = sorted(tp.partition for tp in assigned)
        emit("assigned", member=self.name, partitions=self.assignments[self.name])


def group_member(args, name, assignments):
    """A consumer in the group that commits what it has handled before it polls again."""
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=args.group, enable_auto_commit=False,
                             auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=500,
                             max_poll_records=20, **BASE)
    consumer.subscribe([args.topic[0]], listener=Assignments(name, assignments))
    return consumer


def poll_once(consumer, name, timeout_ms):
    """Polls once; the records are printed, then committed (synchronously). Returns how many."""
    got = 0
    for records in consumer.poll(timeout_ms=timeout_ms).values():
        for record in records:
            emit_record(record, name)
            got += 1
    if got:
        consumer.commit()
    return got


def stable(assignments, partitions):
    """Both members hold partitions and, together, all of them once."""
    a, b = assignments.get("a", []), assignments.get("b", [])
    return a and b and sorted(a + b) == list(range(partitions))


class Member(threading.Thread):
    """Polls one consumer on its own thread until told to stop, counting what it read.

    Each member polls on its own thread with a long timeout: kafka-python 3.0.12 loses the assignment of a
    rebalance that a poll's timeout interrupts (the join task finishes, but need_rejoin() is already False
    so its result is never applied), and a member's JoinGroup waits for the other member to rejoin, which
    only happens in that member's own poll.
    """

    def __init__(self, consumer, name):
        super().__init__(daemon=True)
        self.consumer, self.name, self.got, self.stop = consumer, name, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.got += poll_once(self.consumer, self.name, 1000)


def wait_for(args, done):
    """Waits until `done()` holds or the scenario's time is up."""
    while not done() and time_left(args) > 0:
        time.sleep(0.02)


def scenario_group(args):
    assignments = {}
    a = Member(group_member(args, "a", assignments), "a")
    a.start()
    wait_for(args, lambda: a.got >= args.count)
    b = Member(group_member(args, "b", assignments), "b")
    b.start()
    wait_for(args, lambda: stable(assignments, args.partitions))
    emit("stable", assignments=assignments)
    values = [(i % args.partitions, f"k{i}", f"w2-{i}") for i in range(args.count2)]
    acked, errors = produce(args, values, linger_ms=5)
    emit("produced", acked=acked, errors=errors)
    wait_for(args, lambda: a.got + b.got >= args.count + args.count2)
    for member in (a, b):
        member.stop.set()
        member.join()
    offsets = {str(p): a.consumer.committed(TopicPartition(args.topic[0], p)) for p in range(args.partitions)}
    emit("committed", offsets={p: -1001 if o is None else o for p, o in offsets.items()})
    a.consumer.close()
    b.consumer.close()
    emit("done", count=a.got + b.got)


def scenario_group_resume(args):
    c = group_member(args, "c", {})
    got = 0
    while got < args.count and time_left(args) > 0:
        got += poll_once(c, "c", 3000)  # long: see Member
    c.close()
    emit("done", count=got)


def scenario_offsets_for_times(args):
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None, **BASE)
    partitions = [TopicPartition(args.topic[0], p) for p in range(args.partitions)]
    for ts in (int(t) for t in args.timestamps.split(",")):
        found = consumer.offsets_for_times({tp: ts for tp in partitions})
        for tp, at in sorted(found.items()):
            emit("offset", timestamp=ts, partition=tp.partition, offset=-1 if at is None else at.offset,
                 found_timestamp=None if at is None else at.timestamp)
    lows, highs = consumer.beginning_offsets(partitions), consumer.end_offsets(partitions)
    for tp in partitions:
        emit("watermarks", partition=tp.partition, low=lows[tp], high=highs[tp])
    consumer.close()


def scenario_idempotent(args):
    values = [(0, None, f"idem-{i}") for i in range(args.count)]
    acked, errors = produce(args, values, enable_idempotence=True, linger_ms=2, batch_size=200,
                            retry_backoff_ms=100)
    emit("produced", acked=acked, errors=errors)


def scenario_create_topics(args):
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, **BASE)
    for spec in args.topic:
        name, engine = spec.split(":")
        topic = NewTopic(name, num_partitions=args.partitions, replication_factor=1,
                         topic_configs={"janus.engine": engine})
        try:
            admin.create_topics([topic], timeout_ms=10000)
            emit("created", topic=name, error=None)
        except Exception as e:  # noqa: BLE001 - the test prints whatever went wrong
            emit("created", topic=name, error=repr(e))
    admin.close()


def main():
    if os.environ.get("KAFKA_CLIENT_DEBUG"):
        logging.basicConfig(level=logging.DEBUG)
    args = parse_args(SCENARIOS)
    globals()["scenario_" + args.scenario.replace("-", "_")](args)


if __name__ == "__main__":
    main()
