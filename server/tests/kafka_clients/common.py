"""What the Python client scripts share: their command line and their output.

Each script runs one scenario against a Kafka bootstrap address and prints one JSON object per line on
stdout (the Rust test, server/tests/it/kafka_clients.rs, asserts on them); diagnostics go to stderr.
With KAFKA_CLIENT_DEBUG=1 in the environment, the client's own debug log goes to stderr too (the test
shows the end of stderr when a run fails).
"""

import argparse
import json
import sys
import threading
import time


def parse_args(scenarios):
    """The command line every client script takes."""
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True, help="host:port of the broker's Kafka face")
    p.add_argument("--scenario", required=True, choices=scenarios)
    p.add_argument("--topic", action="append", default=[], help="a topic (create-topics: name:engine)")
    p.add_argument("--partitions", type=int, default=1)
    p.add_argument("--count", type=int, default=0, help="messages to produce or to expect")
    p.add_argument("--count2", type=int, default=0, help="group: messages the script produces once both members are in")
    p.add_argument("--codecs", default="none", help="comma-separated compression codecs to produce with")
    p.add_argument("--group", default="")
    p.add_argument("--timestamps", default="", help="offsets-for-times: comma-separated timestamps (ms)")
    p.add_argument("--timeout-s", type=float, default=20.0, help="how long the scenario may take")
    args = p.parse_args()
    args.deadline = time.monotonic() + args.timeout_s
    return args


_EMIT_LOCK = threading.Lock()


def emit(event, **fields):
    """Prints one result line (in one write, so lines from several threads never interleave)."""
    fields["event"] = event
    with _EMIT_LOCK:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()


def log(*parts):
    """Prints a diagnostic line on stderr."""
    print(*parts, file=sys.stderr, flush=True)


def time_left(args):
    """Seconds until the scenario's deadline (never below zero)."""
    return max(0.0, args.deadline - time.monotonic())



def text(raw):
    """Bytes as text (None stays None)."""
    return None if raw is None else raw.decode("utf-8", "replace")


def summarize(errors):
    """Each distinct error once, with how many times it came (a failing run can fail every message)."""
    counts = {}
    for e in errors:
        counts[e] = counts.get(e, 0) + 1
    return [e if n == 1 else f"{e} (x{n})" for e, n in counts.items()]
