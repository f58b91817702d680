"""The fault injector: one fault at a time (inject, hold, heal), targets chosen with the run's
seeded random generator and the cluster's current metadata. A fault never takes more than one
node out, so the cluster keeps its quorum throughout."""

import glob
import os
import shutil
import time

from confluent_kafka import KafkaException

import workload

KINDS = ["kill-leader", "kill-random", "pause", "partition", "wipe-follower", "disk-full"]
# How likely a pause or a partition picks a partition leader rather than any node: leaders are
# where a stale node could wrongly acknowledge, so they are the interesting targets.
LEADER_BIAS = 0.7
# After a heal, wait at most this long for every partition to have a leader again before the
# next fault (bounded: today a partition whose only replica is gone stays offline).
RECOVERY_WAIT_S = 10
# Metadata calls of the injector: a paused node in the bootstrap list must not stall it long.
METADATA_TIMEOUT_S = 5


class Injector:
    def __init__(self, cluster, rng, hold, pause_hold, log=print):
        self.cluster = cluster
        self.rng = rng
        self.hold = hold
        self.pause_hold = pause_hold
        self.log = log
        self.done = {}
        self.skipped = {}
        self.timeline = []
        self.errors = []
        self.restarts_s = []

    def available(self, kind):
        """Why `kind` cannot run in this cluster, or None."""
        if kind == "partition" and not self.cluster.netns:
            return f"no network namespaces ({self.cluster.why_no_netns})"
        if kind == "disk-full" and not self.cluster.disks:
            return f"no loop-mounted data dirs ({self.cluster.why_no_disks})"
        return None

    def _metadata(self):
        try:
            return workload.metadata(self.cluster.bootstrap(), timeout=METADATA_TIMEOUT_S) or {}
        except KafkaException:
            return {}

    def _leaders(self):
        """{partition: leader node id} for the partitions that have a live leader."""
        return {p: leader for p, (leader, _, _) in self._metadata().items() if leader >= 0}

    def _random_node(self):
        return self.rng.choice(self.cluster.nodes).id

    def _leader_biased(self):
        leaders = self._leaders()
        if leaders and self.rng.random() < LEADER_BIAS:
            return leaders[self.rng.choice(sorted(leaders))]
        return self._random_node()

    def _follower(self):
        """A node that leads none of the topic's partitions; if every node leads one, any node
        but the one leading most."""
        leaders = self._leaders()
        leads = {n.id: 0 for n in self.cluster.nodes}
        for leader in leaders.values():
            if leader in leads:
                leads[leader] += 1
        idle = [n for n, count in sorted(leads.items()) if count == 0]
        if idle:
            return self.rng.choice(idle)
        busiest = max(sorted(leads), key=lambda n: leads[n])
        return self.rng.choice([n for n in sorted(leads) if n != busiest])

    def _wipeable(self):
        """A node whose data may go without taking the last in-sync copy of a partition with
        it: every partition has a live leader, and each partition whose ISR holds the node has
        another live ISR member (which holds every acknowledged record). Among those, one that
        leads nothing if there is one. None if no node qualifies (say, a partition is down to
        one in-sync replica): wiping the disks of every in-sync replica loses data on any
        system, and is beyond this fault's model, "a follower rebuilt from the leader"."""
        md = self._metadata()
        if not md:
            return None
        alive = {n.id for n in self.cluster.nodes if n.alive()}
        if any(leader < 0 or leader not in alive for leader, _, _ in md.values()):
            return None
        eligible = [
            n.id
            for n in self.cluster.nodes
            if all(n.id not in isr or any(r != n.id and r in alive for r in isr) for _, _, isr in md.values())
        ]
        idle = [n for n in eligible if all(leader != n for leader, _, _ in md.values())]
        pool = idle or eligible
        return self.rng.choice(pool) if pool else None

    def _hold(self, bounds):
        seconds = self.rng.uniform(*bounds)
        time.sleep(seconds)
        return round(seconds, 2)

    def _restart(self, node_id):
        started = time.time()
        ok = self.cluster.start(node_id)
        # How long the node took to listen again: it grows with what it recovers at start.
        self.restarts_s.append(round(time.time() - started, 2))
        if not ok:
            self.errors.append(f"node {node_id} did not restart")
            self.log(f"  node {node_id} did not restart")

    def run(self, kind):
        """Runs one fault of `kind` to its heal; records it in the timeline."""
        reason = self.available(kind)
        if reason:
            self.skipped[kind] = self.skipped.get(kind, 0) + 1
            self.timeline.append({"kind": kind, "skipped": reason})
            return
        # A node that failed to come back from the last fault gets another chance first: two
        # nodes down would leave the quorum without a majority.
        self.heal_all()
        started = time.time()
        entry = {"kind": kind, "at": round(started, 3)}
        getattr(self, "_" + kind.replace("-", "_"))(entry)
        if "skipped" in entry:
            self.skipped[kind] = self.skipped.get(kind, 0) + 1
        else:
            self.done[kind] = self.done.get(kind, 0) + 1
        entry["took_s"] = round(time.time() - started, 2)
        self.timeline.append(entry)
        self.log(f"  {entry}")
        self.settle()

    def settle(self):
        """Waits (bounded) until every partition has a leader, then a moment more."""
        deadline = time.time() + RECOVERY_WAIT_S
        while time.time() < deadline:
            md = self._metadata()
            if md and all(leader >= 0 for leader, _, _ in md.values()):
                break
            time.sleep(0.2)
        time.sleep(self.rng.uniform(0.3, 1.0))

    def _kill_leader(self, entry):
        leaders = self._leaders()
        if not leaders:
            entry["skipped"] = "no partition has a leader"
            return
        partition = self.rng.choice(sorted(leaders))
        node = leaders[partition]
        entry.update(partition=partition, node=node)
        self.cluster.kill(node)
        entry["hold_s"] = self._hold(self.hold)
        self._restart(node)

    def _kill_random(self, entry):
        node = self._random_node()
        entry["node"] = node
        self.cluster.kill(node)
        entry["hold_s"] = self._hold(self.hold)
        self._restart(node)

    def _pause(self, entry):
        node = self._leader_biased()
        entry["node"] = node
        self.cluster.pause(node)
        entry["hold_s"] = self._hold(self.pause_hold)
        self.cluster.resume(node)

    def _partition(self, entry):
        node = self._leader_biased()
        entry["node"] = node
        if not self.cluster.isolate(node):
            entry["skipped"] = "isolation failed"
            return
        entry["hold_s"] = self._hold(self.hold)
        self.cluster.heal_network()

    def _wipe_follower(self, entry):
        node_id = self._wipeable()
        if node_id is None:
            entry["skipped"] = "every node holds a partition's last in-sync copy (or a partition has no leader)"
            return
        entry["node"] = node_id
        node = self.cluster.nodes[node_id - 1]
        self.cluster.kill(node_id)
        wiped = sorted(glob.glob(os.path.join(node.data_dir, f"{workload.TOPIC}-*")))
        for path in wiped:
            shutil.rmtree(path, ignore_errors=True)
        entry["wiped"] = [os.path.basename(p) for p in wiped]
        entry["hold_s"] = self._hold(self.hold)
        self._restart(node_id)

    def _disk_full(self, entry):
        node_id = self._follower()
        entry["node"] = node_id
        filler = self.cluster.fill_disk(node_id)
        if filler is None:
            entry["skipped"] = "data dir is not a mount"
            return
        entry["free_bytes"] = self.cluster.free_bytes(node_id)
        entry["hold_s"] = self._hold(self.hold)
        self.cluster.empty_disk(filler)
        # A storage failure takes a log offline until the node restarts.
        self.cluster.kill(node_id)
        self._restart(node_id)

    def heal_all(self):
        """Undoes whatever is still in place and restarts every dead node."""
        self.cluster.heal_network()
        for node in self.cluster.nodes:
            self.cluster.resume(node.id)
            if not node.alive():
                self.cluster.kill(node.id)
                self._restart(node.id)
