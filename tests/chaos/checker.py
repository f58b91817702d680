"""The analysis of one chaos run: pure functions over the recorded history, no I/O.

A history is what the workload saw (see workload.py):
- acks: every acknowledged write, (value, partition, offset, time) -- acks=all, so each one is a
  promise that the record is durable at exactly that offset;
- polls: every record a consumer polled, (consumer, generation, partition, offset, value); the
  generation changes whenever the consumer's assignment does (group rebalance or reassign);
- final reads: two full reads of every partition after the cluster healed, {(p, o): value}.

The anomalies, as in Jepsen's Kafka analyses:
- lost: an acked write missing from the final read, or present at its acked offset with another
  value;
- inconsistent: the two final reads disagree at some (p, o);
- non-monotonic: within one consumer generation, a poll of a partition at an offset <= the
  previous one polled there (the log went backwards under the consumer);
- duplicates: one value at two offsets (the producers are idempotent and every value is unique,
  so any repeat is the broker's);
- divergence: a consumer polled (p, o) = v but the final read has something else (or nothing) at
  (p, o): it was shown a record above the real high watermark, later truncated.

`--self-test` (run by tests/it/chaos.rs before any real run) feeds one crafted history per anomaly
and a clean one through `analyse`, so the checker cannot silently pass everything.
"""

# A report lists at most this many examples of each anomaly: enough to debug from, and the JSON
# line stays readable when a run loses thousands of writes.
EXAMPLES_MAX = 20
# A stretch without an ack on a partition this long is listed (when it began, how long): a
# leader election takes a few seconds, so longer ones are worth explaining.
LONG_STRETCH_S = 15.0
STRETCHES_LISTED = 10


def find_lost(acks, final):
    """acks: [(value, p, o, t)], final: {(p, o): value}. Returns [{value, partition, offset,
    found}] where found is None (missing) or the value found there instead."""
    lost = []
    values = None
    for value, partition, offset, _t in acks:
        if offset is None or offset < 0:
            # Acknowledged without an offset: librdkafka does that when it resolves a retry as
            # already written (its delivery report then carries no offset). Lost only if the
            # value is nowhere in the partition.
            if values is None:
                values = {(p, v) for (p, _o), v in final.items()}
            if (partition, value) not in values:
                lost.append({"value": value, "partition": partition, "offset": offset, "found": None})
            continue
        found = final.get((partition, offset))
        if found != value:
            lost.append({"value": value, "partition": partition, "offset": offset, "found": found})
    return lost


def find_inconsistent(read_a, read_b):
    """Every (p, o) where the two final reads differ (one missing it counts)."""
    out = []
    for key in sorted(set(read_a) | set(read_b)):
        a, b = read_a.get(key), read_b.get(key)
        if a != b:
            out.append({"partition": key[0], "offset": key[1], "first": a, "second": b})
    return out


def find_non_monotonic(polls):
    """polls: [(consumer, generation, p, o, value)] in poll order. Returns the polls whose offset
    is <= the previous one of the same consumer, generation and partition."""
    last = {}
    out = []
    for consumer, generation, partition, offset, value in polls:
        key = (consumer, generation, partition)
        previous = last.get(key)
        if previous is not None and offset <= previous:
            out.append(
                {
                    "consumer": consumer,
                    "generation": generation,
                    "partition": partition,
                    "offset": offset,
                    "previous": previous,
                    "value": value,
                }
            )
        last[key] = offset
    return out


def find_duplicates(final, acks):
    """Values at two or more distinct (p, o): in the final read, or acknowledged twice at
    different places."""
    where = {}
    for (partition, offset), value in final.items():
        where.setdefault(value, set()).add((partition, offset))
    acked_at = {}
    for value, partition, offset, _t in acks:
        if offset is not None and offset >= 0:  # an ack without an offset places nothing
            acked_at.setdefault(value, set()).add((partition, offset))
    out = []
    for source, places in (("final", where), ("acks", acked_at)):
        for value, at in sorted(places.items()):
            if len(at) > 1:
                out.append({"value": value, "in": source, "at": sorted(at)})
    return out


def find_divergence(polls, final):
    """Polls of (p, o) = v where the final read holds something else, or nothing, at (p, o)."""
    out = []
    seen = set()
    for consumer, generation, partition, offset, value in polls:
        found = final.get((partition, offset))
        if found != value and (partition, offset, value) not in seen:
            seen.add((partition, offset, value))
            out.append(
                {"consumer": consumer, "partition": partition, "offset": offset, "polled": value, "final": found}
            )
    return out


def availability(attempted, acks, partitions, start, end):
    """acked / attempted, and per partition the longest stretch in [start, end] with no ack."""
    times = {p: [] for p in range(partitions)}
    for _value, partition, _offset, t in acks:
        times.setdefault(partition, []).append(t)
    gaps = {}
    stretches = []
    for partition, ts in sorted(times.items()):
        ts = sorted(t for t in ts if start <= t <= end)
        edges = [start] + ts + [end]
        gaps[str(partition)] = round(max(b - a for a, b in zip(edges, edges[1:])), 3)
        stretches += [(b - a, a, partition) for a, b in zip(edges, edges[1:]) if b - a >= LONG_STRETCH_S]
    # The longest stretches, with when they began (seconds into the run), to line up with the
    # fault timeline.
    stretches.sort(reverse=True)
    longest = [
        {"partition": p, "from_s": round(a - start, 1), "length_s": round(length, 1)}
        for length, a, p in stretches[:STRETCHES_LISTED]
    ]
    ratio = len(acks) / attempted if attempted else 0.0
    return {"acked_over_attempted": round(ratio, 4), "longest_no_ack_s": gaps, "long_stretches": longest}


def analyse(history):
    """history: {acks, polls, final_a, final_b, attempted, partitions, start, end}. Returns
    {anomaly: [examples]}, {anomaly: count} and the availability figures."""
    acks, polls = history["acks"], history["polls"]
    final_a, final_b = history["final_a"], history["final_b"]
    found = {
        "lost": find_lost(acks, final_a) + [dict(x, read="second") for x in find_lost(acks, final_b)],
        "inconsistent": find_inconsistent(final_a, final_b),
        "non_monotonic": find_non_monotonic(polls),
        "duplicates": find_duplicates(final_a, acks),
        "divergence": find_divergence(polls, final_a),
    }
    # A write lost from both reads is one lost write; the second read's own losses beyond the
    # first's are also counted under inconsistent.
    lost_values = {x["value"] for x in found["lost"]}
    counts = {name: len(items) for name, items in found.items()}
    counts["lost"] = len(lost_values)
    examples = {name: items[:EXAMPLES_MAX] for name, items in found.items()}
    avail = availability(
        history["attempted"], acks, history["partitions"], history["start"], history["end"]
    )
    return {"counts": counts, "examples": examples, "availability": avail}


def is_clean(result):
    return all(n == 0 for n in result["counts"].values())


# --- self-test -------------------------------------------------------------------------------

def _clean_history():
    """Two partitions, three writes each, read back in full by both final reads; one consumer
    polled everything, another was rebalanced (generation 2) and re-read partition 0 from its
    start, which is allowed."""
    acks, final = [], {}
    for p in range(2):
        for o in range(3):
            value = f"p1-{p}{o:05d}"
            acks.append((value, p, o, 1.0 + o))
            final[(p, o)] = value
    polls = [("assign", 0, p, o, final[(p, o)]) for p in range(2) for o in range(3)]
    polls += [("group", 1, 0, o, final[(0, o)]) for o in range(3)]
    polls += [("group", 2, 0, o, final[(0, o)]) for o in range(3)]
    return {
        "acks": acks,
        "polls": polls,
        "final_a": dict(final),
        "final_b": dict(final),
        "attempted": len(acks),
        "partitions": 2,
        "start": 0.0,
        "end": 4.0,
    }


def _without_polls(history, partition, offset):
    history["polls"] = [x for x in history["polls"] if (x[2], x[3]) != (partition, offset)]
    return history


def _crafted():
    """(name, history, the exact set of anomalies it must raise)."""
    cases = [("clean", _clean_history(), set())]

    h = _without_polls(_clean_history(), 1, 2)
    del h["final_a"][(1, 2)], h["final_b"][(1, 2)]
    cases.append(("lost: acked write missing", h, {"lost"}))

    h = _clean_history()
    h["acks"].append((h["final_a"][(1, 1)], 1, None, 2.0))
    cases.append(("clean: an ack without an offset of a value that is there", h, set()))

    h = _clean_history()
    h["acks"].append(("p1-gone", 1, None, 2.0))
    cases.append(("lost: an ack without an offset of a value that is nowhere", h, {"lost"}))

    h = _without_polls(_clean_history(), 0, 1)
    h["final_a"][(0, 1)] = h["final_b"][(0, 1)] = "p2-999999"
    cases.append(("lost: other value at the acked offset", h, {"lost"}))

    h = _clean_history()
    h["final_b"][(1, 3)] = "p2-000042"
    cases.append(("inconsistent: second read has an extra record", h, {"inconsistent"}))

    h = _clean_history()
    h["polls"].append(("assign", 0, 1, 1, h["final_a"][(1, 1)]))
    cases.append(("non-monotonic: assign consumer went back", h, {"non_monotonic"}))

    h = _clean_history()
    h["polls"].append(("group", 2, 0, 2, h["final_a"][(0, 2)]))
    cases.append(("non-monotonic: same offset twice in a generation", h, {"non_monotonic"}))

    h = _clean_history()
    h["final_a"][(0, 3)] = h["final_b"][(0, 3)] = h["final_a"][(1, 0)]
    cases.append(("duplicates: one value at two offsets", h, {"duplicates"}))

    h = _clean_history()
    h["acks"].append((h["final_a"][(1, 0)], 0, 7, 2.0))
    h["final_a"][(0, 7)] = h["final_b"][(0, 7)] = h["final_a"][(1, 0)]
    cases.append(("duplicates: one value acked twice", h, {"duplicates"}))

    h = _clean_history()
    h["polls"].append(("assign", 0, 0, 3, "p1-ghost"))
    cases.append(("divergence: polled a record the final read lacks", h, {"divergence"}))

    h = _clean_history()
    h["polls"].append(("group", 3, 1, 1, "p2-other"))
    cases.append(("divergence: polled another value than the final read", h, {"divergence"}))
    return cases


def self_test():
    """Runs every crafted history; returns a list of failure descriptions (empty: all good)."""
    failures = []
    for name, history, expected in _crafted():
        result = analyse(history)
        flagged = {k for k, n in result["counts"].items() if n}
        if flagged != expected:
            failures.append(f"{name}: flagged {sorted(flagged)}, expected {sorted(expected)}")
        elif is_clean(result) != (not expected):
            failures.append(f"{name}: is_clean disagrees with the counts {result['counts']}")
    clean = analyse(_clean_history())
    if clean["availability"]["acked_over_attempted"] != 1.0:
        failures.append(f"availability of the clean history: {clean['availability']}")
    if clean["availability"]["longest_no_ack_s"] != {"0": 1.0, "1": 1.0} or clean["availability"]["long_stretches"]:
        failures.append(f"longest gaps of the clean history: {clean['availability']}")
    return failures
