"""Why a chaos run's duplicates happened, from the batches that hold them: the producers are
idempotent, so a value twice in the log is either

- the same producer id, epoch and sequence twice: the broker failed to recognise a retry
  (its fault), or
- the same producer id under two epochs: the client resent the records as new ones after
  bumping its epoch (librdkafka does that when it takes a failed request for "not persisted" and
  then bumps the epoch over a gap or a timeout; no broker can recognise those as retries).

It copies each partition's directory from a node, runs `sluice log dump` on the copy (the
broker keeps running) and looks up the producer fields of each copy's batch.
"""

import bisect
import os
import re
import shutil
import subprocess
import tempfile

import workload

BATCH = re.compile(
    r"offsets (\d+)\.\.=(\d+)\s+records \d+.*producer (-?\d+)/(-?\d+) seq (-?\d+)"
)
CAUSES = ("epoch bump (client resend)", "same epoch and sequence (broker)", "unclassified")


def dump_batches(bin_path, data_dir, partition):
    """[(base, last, producer id, epoch, base sequence)] of one partition's log, or None."""
    source = os.path.join(data_dir, f"{workload.TOPIC}-{partition}")
    if not os.path.isdir(source):
        return None
    with tempfile.TemporaryDirectory() as scratch:
        copy = os.path.join(scratch, f"{workload.TOPIC}-{partition}")
        shutil.copytree(source, copy)
        out = subprocess.run([bin_path, "log", "dump", copy], capture_output=True, text=True, timeout=300)
    rows = [tuple(int(x) for x in m.groups()) for m in map(BATCH.match, out.stdout.splitlines()) if m]
    return sorted(rows)


def record_producer(rows, offset):
    """(producer id, epoch, sequence) of the record at `offset`, or None."""
    at = bisect.bisect_right([r[0] for r in rows], offset) - 1
    if at < 0:
        return None
    base, last, pid, epoch, seq = rows[at]
    if offset > last or pid < 0 or seq < 0:
        return None
    return pid, epoch, seq + (offset - base)


def classify(duplicates, bin_path, data_dirs):
    """duplicates: checker.find_duplicates items. Returns ({cause: count}, examples)."""
    counts = {cause: 0 for cause in CAUSES}
    examples = []
    logs = {}
    for dup in duplicates:
        places = dup["at"]
        fields = []
        for partition, offset in places:
            if partition not in logs:
                logs[partition] = next(
                    (rows for d in data_dirs if (rows := dump_batches(bin_path, d, partition))), None
                )
            rows = logs[partition]
            fields.append(record_producer(rows, offset) if rows else None)
        if any(f is None for f in fields):
            cause = CAUSES[2]
        elif len(set(fields)) < len(fields):
            cause = CAUSES[1]
        elif len({(pid, epoch) for pid, epoch, _ in fields}) > 1 and len({pid for pid, _, _ in fields}) == 1:
            cause = CAUSES[0]
        else:
            cause = CAUSES[2]
        counts[cause] += 1
        if len(examples) < 10:
            examples.append({"value": dup["value"], "at": places, "producer_epoch_sequence": fields, "cause": cause})
    return counts, examples
