"""The node manager: a 3-node Sluice cluster that the chaos run starts, kills, pauses, restarts,
cuts off and starves of disk.

Layout as root (when `ip netns` works): node i runs in its own network namespace
`sluice-chaos-<pid>-<i>`, joined by a veth pair to a bridge `scb<pid>` that holds the subnet's
.1 (the checker's address); node i listens on .(10+i). A network partition is then a set of
blackhole routes inside the namespaces (clients on .1 still reach every node). When the disk-full
fault is enabled, each node's data dir is a small loop-mounted ext4 image.
Not root: every node on 127.0.0.1 with its own ports; no partitions, no full disks.

Everything made here is undone by `Cluster.close()` (called from try/finally and atexit).
"""

import ctypes
import os
import shutil
import re
import signal
import socket
import subprocess
import time

NODES = 3
KAFKA_PORT = 9092
CONTROLLER_PORT = 9093
# Flags that make the cluster notice a dead node in a second or two (tests/it/harness.rs
# FAST_CLUSTER), one shard per node (this machine has 2 CPUs for 3 nodes and the workload).
FAST_CLUSTER = [
    "--broker-session-timeout-ms",
    "1500",
    "--broker-heartbeat-interval-ms",
    "250",
    "--controller-election-timeout-ms",
    "500",
    "--cores",
    "1",
]
# A start takes well under a second; a node waits for the quorum before it listens, so allow for
# a slow election on a loaded machine, but never hang the run.
START_TIMEOUT_S = 60
# The loop-mounted image of each node's data dir (disk-full runs): room for the topic's and
# __consumer_offsets' partitions (each preallocates a 32 MiB extent), sparse on the host.
IMAGE_BYTES = 2 * 1024 * 1024 * 1024
# Lines of each node's log copied into a failure report.
LOG_TAIL_LINES = 200
LISTENING = "sluice broker listening on "


def run(*cmd, check=True):
    """Runs a setup command, quietly; raises with its stderr when `check` and it fails."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {result.stderr.strip()}")
    return result


PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent():
    """preexec_fn of every node: SIGKILL it when the chaos run dies, even by SIGKILL (which skips
    try/finally and atexit), so no node outlives its run."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, node_id, host, port, controller_port, data_dir, log_path, netns):
        self.id = node_id
        self.host = host
        self.port = port
        self.controller_port = controller_port
        self.data_dir = data_dir
        self.log_path = log_path
        self.netns = netns
        self.proc = None
        self.paused = False
        self.mount = None  # the loop image's path when the data dir is a mount

    @property
    def addr(self):
        return f"{self.host}:{self.port}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    def __init__(self, bin_path, work_dir, log_dir, extra_flags, want_netns, want_disks, log=print, keep_data=False):
        self.bin = bin_path
        # Copy each loop-mounted data dir out (to <data dir>-kept) before its disk goes.
        self.keep_data = keep_data
        self.work_dir = work_dir
        self.extra = list(extra_flags)
        self.log = log
        self.pid = os.getpid()
        self.bridge = None
        self.namespaces = []
        self.isolated = None  # (node id, [(namespace, route)]) while a partition is in place
        self.nodes = []
        # Why there are no network namespaces / loop-mounted data dirs, if there are none.
        self.why_no_netns = "--loopback" if not want_netns else "not root" if os.geteuid() != 0 else None
        self.netns = self.why_no_netns is None and self._setup_network()
        if not self.netns and self.why_no_netns is None:
            self.why_no_netns = "`ip netns` failed"
        self.why_no_disks = "--loopback or kind not chosen" if not want_disks else None
        if want_disks and os.geteuid() != 0:
            self.why_no_disks = "not root"
        self.disks = self.why_no_disks is None
        for i in range(1, NODES + 1):
            data_dir = os.path.join(work_dir, f"node-{i}")
            os.makedirs(data_dir, exist_ok=True)
            log_path = os.path.join(log_dir, f"node-{i}.log")
            if self.netns:
                node = Node(i, self._ip(10 + i), KAFKA_PORT, CONTROLLER_PORT, data_dir, log_path, self._ns(i))
            else:
                node = Node(i, "127.0.0.1", free_port(), free_port(), data_dir, log_path, None)
            self.nodes.append(node)
        if self.disks:
            for node in self.nodes:
                try:
                    self._mount_image(node)
                except (RuntimeError, OSError) as e:
                    self.why_no_disks = f"loop mount failed: {e}"
                    self.disks = False
                    break
        self.voters = ",".join(f"{n.id}@{n.host}:{n.controller_port}" for n in self.nodes)

    # --- network -------------------------------------------------------------------------

    def _subnet(self):
        # The third octet from our pid, so two runs on one machine do not share a subnet.
        return f"10.77.{self.pid % 250}"

    def _ip(self, host):
        return f"{self._subnet()}.{host}"

    def _ns(self, i):
        return f"sluice-chaos-{self.pid}-{i}"

    @staticmethod
    def remove_stale_networks():
        """Deletes the namespaces and bridges of earlier runs whose process is gone (a run killed
        by SIGKILL cannot clean up after itself). Returns what it removed."""
        removed = []
        listing = run("ip", "netns", "list", check=False).stdout
        for ns, pid in re.findall(r"^(sluice-chaos-(\d+)-\d+)", listing, re.M):
            if not os.path.exists(f"/proc/{pid}"):
                run("ip", "netns", "del", ns, check=False)
                removed.append(ns)
        for pid in re.findall(r"^\d+: scb(\d+)[:@]", run("ip", "-o", "link", check=False).stdout, re.M):
            if not os.path.exists(f"/proc/{pid}"):
                run("ip", "link", "del", f"scb{pid}", check=False)
                removed.append(f"scb{pid}")
        return removed

    def _setup_network(self):
        for name in self.remove_stale_networks():
            self.log(f"removed {name}, left by a run that is gone")
        bridge = f"scb{self.pid}"
        try:
            run("ip", "link", "add", bridge, "type", "bridge")
            self.bridge = bridge
            run("ip", "addr", "add", f"{self._ip(1)}/24", "dev", bridge)
            run("ip", "link", "set", bridge, "up")
            for i in range(1, NODES + 1):
                ns = self._ns(i)
                run("ip", "netns", "add", ns)
                self.namespaces.append(ns)
                host_end, ns_end = f"sch{self.pid}n{i}", f"scn{self.pid}n{i}"
                run("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
                run("ip", "link", "set", host_end, "master", bridge)
                run("ip", "link", "set", host_end, "up")
                run("ip", "link", "set", ns_end, "netns", ns)
                run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
                run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{self._ip(10 + i)}/24", "dev", ns_end)
                run("ip", "netns", "exec", ns, "ip", "link", "set", ns_end, "up")
            return True
        except (RuntimeError, OSError) as e:
            self.log(f"network namespaces unavailable: {e}")
            self._teardown_network()
            return False

    def _teardown_network(self):
        for ns in self.namespaces:
            run("ip", "netns", "del", ns, check=False)
        self.namespaces = []
        if self.bridge:
            run("ip", "link", "del", self.bridge, check=False)
            self.bridge = None

    def isolate(self, node_id):
        """Cuts node `node_id` off from the other nodes (both directions); clients still reach
        it. Returns False when partitions are unavailable."""
        if not self.netns or self.isolated:
            return False
        x = self.nodes[node_id - 1]
        routes = []
        for y in self.nodes:
            if y.id == node_id:
                continue
            routes.append((x.netns, f"{y.host}/32"))
            routes.append((y.netns, f"{x.host}/32"))
        self.isolated = (node_id, [])
        for ns, dest in routes:
            run("ip", "netns", "exec", ns, "ip", "route", "add", "blackhole", dest)
            self.isolated[1].append((ns, dest))
        return True

    def heal_network(self):
        if not self.isolated:
            return
        for ns, dest in self.isolated[1]:
            run("ip", "netns", "exec", ns, "ip", "route", "del", "blackhole", dest, check=False)
        self.isolated = None

    # --- disks ---------------------------------------------------------------------------

    def _mount_image(self, node):
        image = os.path.join(self.work_dir, f"node-{node.id}.img")
        with open(image, "wb") as f:
            f.truncate(IMAGE_BYTES)
        # -m 0: no blocks reserved for root (the broker runs as root and would use them).
        run("mkfs.ext4", "-q", "-F", "-m", "0", image)
        run("mount", "-o", "loop", image, node.data_dir)
        node.mount = image

    def fill_disk(self, node_id):
        """Fills node `node_id`'s data dir's filesystem to ~0 free bytes; returns the filler's
        path, or None when its data dir is no mount."""
        node = self.nodes[node_id - 1]
        if not node.mount:
            return None
        filler = os.path.join(node.data_dir, "chaos-filler")
        st = os.statvfs(node.data_dir)
        size = st.f_bavail * st.f_frsize
        # fallocate may need a few blocks of metadata for itself: back off until it fits, then
        # top up with whatever is left.
        while size > 0 and run("fallocate", "-l", str(size), filler, check=False).returncode != 0:
            size -= 1024 * 1024
        st = os.statvfs(node.data_dir)
        if st.f_bavail:
            run("fallocate", "-l", str(st.f_bavail * st.f_frsize), filler + "-2", check=False)
        return filler

    def free_bytes(self, node_id):
        st = os.statvfs(self.nodes[node_id - 1].data_dir)
        return st.f_bavail * st.f_frsize

    def empty_disk(self, filler):
        for path in (filler, filler + "-2"):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass

    # --- processes -----------------------------------------------------------------------

    def _command(self, node):
        cmd = [
            self.bin,
            "broker",
            "--node-id",
            str(node.id),
            "--listen",
            node.addr,
            "--data-dir",
            node.data_dir,
            "--controller-listen",
            f"{node.host}:{node.controller_port}",
            "--controller-voters",
            self.voters,
        ]
        cmd += FAST_CLUSTER + self.extra
        if node.netns:
            cmd = ["ip", "netns", "exec", node.netns] + cmd
        return cmd

    def spawn(self, node):
        """Starts `node` (without waiting); returns the log offset its output starts at."""
        assert not node.alive()
        with open(node.log_path, "ab") as log:
            log.write(f"==== chaos: start node {node.id} at {time.strftime('%H:%M:%S')}\n".encode())
            offset = log.tell()
            env = dict(os.environ, SLUICE_LOG=os.environ.get("SLUICE_LOG", "warn"))
            # `ip netns exec` execs the broker after joining the namespace: same pid, so
            # signals reach the broker itself.
            node.proc = subprocess.Popen(
                self._command(node),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=die_with_parent,
            )
        node.paused = False
        return offset

    def wait_listening(self, node, offset, timeout=START_TIMEOUT_S):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(node.log_path, "rb") as log:
                log.seek(offset)
                if LISTENING.encode() in log.read():
                    return True
            if not node.alive():
                return False
            time.sleep(0.05)
        return False

    def start_all(self):
        offsets = [self.spawn(n) for n in self.nodes]
        for node, offset in zip(self.nodes, offsets):
            if not self.wait_listening(node, offset):
                raise RuntimeError(f"node {node.id} did not start; see {node.log_path}")

    def start(self, node_id):
        node = self.nodes[node_id - 1]
        for attempt in range(5):
            offset = self.spawn(node)
            if self.wait_listening(node, offset):
                return True
            self.kill(node_id)
            # A restart may race the old process's port release.
            time.sleep(0.2 * (attempt + 1))
        return False

    def kill(self, node_id):
        node = self.nodes[node_id - 1]
        if node.proc is None:
            return
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGKILL)
        node.proc.wait()
        node.proc = None
        node.paused = False

    def pause(self, node_id):
        node = self.nodes[node_id - 1]
        if node.alive():
            node.proc.send_signal(signal.SIGSTOP)
            node.paused = True

    def resume(self, node_id):
        node = self.nodes[node_id - 1]
        if node.alive() and node.paused:
            node.proc.send_signal(signal.SIGCONT)
        node.paused = False

    def bootstrap(self):
        return ",".join(n.addr for n in self.nodes)

    def log_tail(self, node):
        try:
            with open(node.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError as e:
            return f"(no log: {e})"
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def close(self):
        """Kills every node and undoes the network and disks; safe to call twice."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGCONT)
                node.proc.send_signal(signal.SIGKILL)
                node.proc.wait()
            node.proc = None
        self.heal_network()
        self._teardown_network()
        for node in self.nodes:
            if node.mount:
                if self.keep_data:
                    shutil.copytree(node.data_dir, node.data_dir + "-kept", dirs_exist_ok=True)
                # mount -o loop set autoclear: unmounting frees the loop device too.
                if run("umount", node.data_dir, check=False).returncode != 0:
                    run("umount", "-l", node.data_dir, check=False)
                try:
                    os.remove(node.mount)
                except OSError:
                    pass
                node.mount = None
