"""A real multi-node Docker Swarm on this machine, for tests, the demo and the benchmarks.

Each node is its own ``dockerd`` (the host's ``/usr/sbin/dockerd``) with its own data root,
exec root, API socket and containerd, in a network namespace of its own (``<prefix>-<node>``)
and a UTS namespace (so ``docker node ls`` shows the node's name). The nodes are wired to one
bridge that lives in a namespace of its own too (``<prefix>-switch``), so nothing is added to
the host's interfaces, routes or firewall: the nodes reach each other over addresses of a
private subnet that exists only inside these namespaces, and the host reaches each engine
through its unix socket (:attr:`Node.docker_host`). Every process of a node (dockerd, its
containerd, the shims and the containers of its tasks) runs in one cgroup subtree
(``<prefix>/<node>``), which is how :meth:`Cluster.kill` takes a whole "machine" away at once.

    with Cluster(managers=3, workers=2) as cluster:   # up: leftovers removed, swarm built
        cluster.load_image("autoscaler-standin:1")     # from the host engine onto every node
        cluster.label("w1", "ollama", "true")
        leader = cluster.leader()
        cluster.kill(leader.name)                       # SIGKILL everything, link down
        cluster.start(leader.name)                      # the same node comes back
    # torn down: processes, mounts, namespaces, cgroups, data directories

Teardown is :func:`remove_leftovers` for the cluster's prefix; it runs on ``close()``, at
interpreter exit and before every start (a previous run that was killed leaves nothing that
stops the next one). ``python -m devkit.multinode --cleanup`` runs it by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import requests.exceptions

from .waiting import WaitTimeout, wait_for

DOCKERD = "/usr/sbin/dockerd"
DEFAULT_PREFIX = "asmn"
DEFAULT_SUBNET = "192.168.213.0/24"  # exists only inside the cluster's namespaces
CGROUP_FS = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/run/netns")
SWARM_PORT = 2377
API_VERSION = "1.41"  # Docker Engine 20.10
_MNT_DETACH = 2


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> float:
    """``waiting.wait_for``, returning the seconds it took."""
    start = time.monotonic()
    wait_for(predicate, timeout, what, interval)
    return time.monotonic() - start


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
    return done


# --- where a cluster keeps things, by prefix --------------------------------------------------


def _data_dir(prefix: str) -> Path:
    return Path("/var/lib") / prefix


def _run_dir(prefix: str) -> Path:
    return Path("/run") / prefix


def _cgroup_v2() -> bool:
    return (CGROUP_FS / "cgroup.controllers").exists()


def _tracking_cgroup(prefix: str) -> Path:
    """The cgroup directory whose subtree holds every process of the cluster's nodes."""
    return (CGROUP_FS if _cgroup_v2() else CGROUP_FS / "pids") / prefix


def _cgroup_hierarchies() -> list[Path]:
    if _cgroup_v2():
        return [CGROUP_FS]
    return [p for p in CGROUP_FS.iterdir() if p.is_dir() and not p.is_symlink() and (p / "cgroup.procs").exists()]


# --- processes, mounts, namespaces, cgroups ---------------------------------------------------


def _pids_in(cgroup: Path) -> set[int]:
    pids: set[int] = set()
    if not cgroup.exists():
        return pids
    for procs in cgroup.rglob("cgroup.procs"):
        try:
            pids.update(int(p) for p in procs.read_text().split())
        except OSError:
            pass
    return pids


def _pids_in_netns(netns: str) -> set[int]:
    done = _run("ip", "netns", "pids", netns, check=False)
    return {int(p) for p in done.stdout.split()} if done.returncode == 0 else set()


def _pids_naming(paths: Iterable[Path]) -> set[int]:
    """Processes whose command line names one of ``paths`` (a fallback to the cgroups)."""
    needles = [str(p).encode() + b"/" for p in paths] + [str(p).encode() + b"\0" for p in paths]
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(n in cmdline for n in needles):
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _kill_all(find: Callable[[], set[int]], timeout: float = 20) -> None:
    """SIGKILL whatever ``find`` returns, again and again, until nothing is left alive."""
    deadline = time.monotonic() + timeout
    while True:
        pids = {p for p in find() if _alive(p)}
        if not pids:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes survived SIGKILL: {sorted(pids)}")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _mounts_under(roots: Iterable[Path]) -> list[str]:
    prefixes = [str(r).rstrip("/") for r in roots]
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # \040 and friends
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            points.append(point)
    return points


def _unmount_all(roots: Iterable[Path]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    roots = list(roots)
    for _ in range(10):
        points = _mounts_under(roots)
        if not points:
            return
        for point in sorted(points, key=len, reverse=True):
            libc.umount2(point.encode(), _MNT_DETACH)
    raise RuntimeError(f"could not unmount: {_mounts_under(roots)}")


def _remove_cgroups(prefix: str) -> None:
    for hierarchy in _cgroup_hierarchies():
        top = hierarchy / prefix
        if not top.exists():
            continue
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            try:
                path.rmdir()
            except OSError:
                pass
        try:
            top.rmdir()
        except OSError as err:
            raise RuntimeError(f"cgroup {top} not removable: {err}") from err


def _our_netns(prefix: str) -> list[str]:
    done = _run("ip", "netns", "list", check=False)
    names = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix + "-")]


def remove_leftovers(prefix: str = DEFAULT_PREFIX) -> None:
    """Remove everything a cluster with this prefix made, whether or not it is running.

    Processes (by cgroup, network namespace and command line), mounts under its data and run
    directories, its network namespaces (the bridge and veths go with them), cgroups, data.
    """
    roots = [_data_dir(prefix), _run_dir(prefix)]
    tracking = _tracking_cgroup(prefix)
    netns = _our_netns(prefix)
    _kill_all(lambda: _pids_in(tracking) | _pids_naming(roots) | {p for n in netns for p in _pids_in_netns(n)})
    _unmount_all(roots)
    for name in netns:
        _run("ip", "netns", "delete", name, check=False)
    leftover = _our_netns(prefix)
    if leftover:
        raise RuntimeError(f"network namespaces not removed: {leftover}")
    _remove_cgroups(prefix)
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)
        if root.exists():
            raise RuntimeError(f"{root} not removed")
    _remove_netns_dir_if_unused()


def _remove_netns_dir_if_unused() -> None:
    """``ip netns add`` makes /run/netns a shared bind mount of itself; with no namespace left
    in it (ours or anyone's), it goes too, as it was before the first cluster."""
    try:
        if any(NETNS_DIR.iterdir()):
            return
    except FileNotFoundError:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    while str(NETNS_DIR) in _mounts_under([NETNS_DIR]):
        if libc.umount2(str(NETNS_DIR).encode(), _MNT_DETACH) != 0:
            return
    try:
        NETNS_DIR.rmdir()
    except OSError:
        pass


def leftovers(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """What a cluster with this prefix left behind (empty when nothing): for tests and checks."""
    found = [f"netns {n}" for n in _our_netns(prefix)]
    roots = [_data_dir(prefix), _run_dir(prefix)]
    found += [f"mount {m}" for m in _mounts_under(roots)]
    found += [f"dir {r}" for r in roots if r.exists()]
    found += [f"cgroup {h / prefix}" for h in _cgroup_hierarchies() if (h / prefix).exists()]
    found += [f"process {p}" for p in _pids_naming(roots) | _pids_in(_tracking_cgroup(prefix)) if _alive(p)]
    return found


@contextlib.contextmanager
def unwind_on_sigterm() -> Iterator[None]:
    """Inside this block a SIGTERM (a CI timeout, ``kill``) raises ``KeyboardInterrupt`` in the
    main thread, so ``with Cluster(...)`` blocks and fixtures tear down as on Ctrl-C."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- the cluster --------------------------------------------------------------------------------


@dataclass
class Node:
    """One Docker Engine of the cluster. ``docker_host`` is what a client points at."""

    name: str
    role: str  # "manager" or "worker"
    address: str  # the node's address on the cluster's bridge
    prefix: str
    node_id: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def netns(self) -> str:
        return f"{self.prefix}-{self.name}"

    @property
    def data_root(self) -> Path:
        return _data_dir(self.prefix) / self.name

    @property
    def exec_root(self) -> Path:
        return _run_dir(self.prefix) / self.name

    @property
    def socket(self) -> Path:
        return _run_dir(self.prefix) / f"{self.name}.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def cgroup(self) -> Path:
        """The tracking cgroup of everything this node runs (the daemons and the containers)."""
        return _tracking_cgroup(self.prefix) / self.name

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def api(self, timeout: float = 30) -> docker.APIClient:
        """A new low-level client for this engine (close it, or use it in a ``with``).

        The API version is fixed, so making a client never calls the engine (a client whose
        version probe failed would leave its connection open)."""
        return docker.APIClient(base_url=self.docker_host, version=API_VERSION, timeout=timeout)

    def client(self, timeout: float = 30) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, version=API_VERSION, timeout=timeout)


class Cluster:
    """A swarm of ``managers`` managers (``m1``…) and ``workers`` workers (``w1``…).

    ``Cluster(...)`` only plans it; ``up()`` (or entering a ``with`` block) removes the
    leftovers of its prefix, builds the network, starts every engine, forms the swarm (``m1``
    initialises it, the other managers join one at a time, the workers at once) and loads
    ``images`` from the host engine onto every node.
    """

    def __init__(self, managers: int = 3, workers: int = 1, *, prefix: str = DEFAULT_PREFIX,
                 subnet: str = DEFAULT_SUBNET, images: Iterable[str] = (), log_dir: Path | None = None,
                 dockerd: str = DOCKERD):
        if managers < 1:
            raise ValueError("a swarm needs at least one manager")
        network = ipaddress.ip_network(subnet)
        hosts = network.hosts()
        self.prefix = prefix
        self.prefix_len = network.prefixlen
        self.dockerd = dockerd
        self.images = list(images)
        self.log_dir = log_dir or _data_dir(prefix) / "logs"
        names = [(f"m{i + 1}", "manager") for i in range(managers)] + [(f"w{i + 1}", "worker") for i in range(workers)]
        next(hosts)  # the first address is left unused
        self.nodes: dict[str, Node] = {n: Node(n, role, str(next(hosts)), prefix) for n, role in names}
        self._closed = False
        self._finalizer = weakref.finalize(self, remove_leftovers, prefix)  # also runs at exit

    # -- views

    @property
    def managers(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.role == "manager"]

    @property
    def workers(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.role == "worker"]

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def name_of(self, node_id: str) -> str:
        """The harness's name (``m1``, ``w2``) of a swarm node ID."""
        for node in self.nodes.values():
            if node.node_id == node_id:
                return node.name
        raise KeyError(node_id)

    @property
    def switch_netns(self) -> str:
        return f"{self.prefix}-switch"

    # -- life cycle

    def __enter__(self) -> Cluster:
        try:
            self.up()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def up(self) -> Cluster:
        remove_leftovers(self.prefix)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._make_network()
        _tracking_cgroup(self.prefix).mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(self._start_engine, self.nodes.values()))
        self._form_swarm()
        for image in self.images:
            self.load_image(image)
        return self

    def close(self) -> None:
        """Tear everything down (idempotent); logs stay in ``log_dir`` if it is outside the data dir."""
        if self._closed:
            return
        self._closed = True
        for node in self.nodes.values():
            if node._log is not None:
                node._log.close()
        self._finalizer()  # remove_leftovers(prefix), once
        for node in self.nodes.values():
            if node.process is not None:
                node.process.wait()

    # -- network

    def _make_network(self) -> None:
        switch = self.switch_netns
        _run("ip", "netns", "add", switch)
        _run("ip", "-n", switch, "link", "set", "lo", "up")
        _run("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", switch, "link", "set", "br0", "up")
        for node in self.nodes.values():
            _run("ip", "netns", "add", node.netns)
            _run("ip", "-n", node.netns, "link", "set", "lo", "up")
            _run("ip", "-n", switch, "link", "add", node.name, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
            _run("ip", "-n", switch, "link", "set", node.name, "master", "br0", "up")
            _run("ip", "-n", node.netns, "addr", "add", f"{node.address}/{self.prefix_len}", "dev", "eth0")
            _run("ip", "-n", node.netns, "link", "set", "eth0", "up")

    def _link(self, node: Node, state: str) -> None:
        _run("ip", "-n", self.switch_netns, "link", "set", node.name, state)

    # -- engines

    def _dockerd_args(self, node: Node) -> list[str]:
        config = node.data_root.parent / f"{node.name}.daemon.json"
        config.write_text("{}\n")  # never the host's /etc/docker/daemon.json
        return [
            self.dockerd,
            "--config-file", str(config),
            "--data-root", str(node.data_root),
            "--exec-root", str(node.exec_root),
            "--pidfile", str(node.exec_root.parent / f"{node.name}.pid"),
            "-H", node.docker_host,
            "--iptables=false", "--ip-masq=false", "--bridge=none",
            "--cgroup-parent", f"/{self.prefix}/{node.name}",
            "--log-level", "warn",
        ]

    def _start_engine(self, node: Node) -> None:
        node.data_root.mkdir(parents=True, exist_ok=True)
        node.exec_root.mkdir(parents=True, exist_ok=True)
        daemon_cgroup = node.cgroup / "daemon"
        daemon_cgroup.mkdir(parents=True, exist_ok=True)
        if node._log is None:
            node._log = (self.log_dir / f"{node.name}.dockerd.log").open("ab")
        # Enter the node's network namespace (nsenter, not `ip netns exec`: that remounts /sys and
        # hides the cgroups), take a UTS namespace for the node's hostname, join the node's cgroup.
        script = 'echo $$ > "$1" && hostname "$2" && shift 2 && exec "$@"'
        node.process = subprocess.Popen(
            ["nsenter", f"--net={NETNS_DIR / node.netns}", "--", "unshare", "--uts", "--",
             "/bin/sh", "-c", script, "sh", str(daemon_cgroup / "cgroup.procs"), node.name,
             *self._dockerd_args(node)],
            stdin=subprocess.DEVNULL, stdout=node._log, stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: self._answers(node), 60, f"dockerd of {node.name}", 0.25)
        except WaitTimeout:
            raise RuntimeError(f"dockerd of {node.name} did not start:\n{self.log_tail(node.name)}") from None

    def _answers(self, node: Node) -> bool:
        if node.process is None or node.process.poll() is not None:
            raise RuntimeError(f"dockerd of {node.name} exited:\n{self.log_tail(node.name)}")
        if not _listening(node.socket):  # docker-py leaks the socket of a failed connect
            return False
        try:
            with node.api(timeout=5) as api:
                return api.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
            return False

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.dockerd.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- the swarm

    def _form_swarm(self) -> None:
        first, *other_managers = self.managers
        with first.api() as api:
            api.init_swarm(advertise_addr=first.address, listen_addr=f"{first.address}:{SWARM_PORT}")
            tokens = api.inspect_swarm()["JoinTokens"]
        for node in other_managers:  # raft membership changes one at a time
            self._join(node, first, tokens["Manager"])
        with ThreadPoolExecutor(max(1, len(self.workers))) as pool:
            list(pool.map(lambda n: self._join(n, first, tokens["Worker"]), self.workers))
        for node in self.nodes.values():
            with node.api() as api:
                node.node_id = api.info()["Swarm"]["NodeID"]
        self.wait_healthy()

    def _join(self, node: Node, via: Node, token: str) -> None:
        with node.api(timeout=60) as api:
            api.join_swarm([f"{via.address}:{SWARM_PORT}"], token,
                           listen_addr=f"{node.address}:{SWARM_PORT}", advertise_addr=node.address)

    def swarm_nodes(self, via: Node | None = None, timeout: float = 10) -> list[dict[str, Any]]:
        """``GET /nodes`` from ``via`` (default: the first running manager that answers)."""
        errors = []
        for manager in [via] if via else [m for m in self.managers if m.running]:
            try:
                with manager.api(timeout=timeout) as api:
                    return api.nodes()
            except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as err:
                errors.append(f"{manager.name}: {err}")
        raise RuntimeError(f"no manager answered: {errors}")

    def leader(self, timeout: float = 10) -> Node:
        """The manager the running managers name as leader (``RuntimeError`` when none does)."""
        for entry in self.swarm_nodes(timeout=timeout):
            if entry.get("ManagerStatus", {}).get("Leader"):
                return self.node(self.name_of(entry["ID"]))
        raise RuntimeError("the swarm has no leader")

    def states(self, via: Node | None = None) -> dict[str, str]:
        """Each node's state as the managers see it: ``ready``, ``down``, ``unknown``…"""
        return {self.name_of(e["ID"]): e["Status"]["State"] for e in self.swarm_nodes(via)}

    def _healthy(self) -> bool:
        try:
            entries = self.swarm_nodes()
        except RuntimeError:
            return False
        live = {n.node_id for n in self.nodes.values() if n.running}
        for entry in entries:
            if entry["ID"] in live and entry["Status"]["State"] != "ready":
                return False
            if entry["ID"] in live and entry.get("ManagerStatus", {}).get("Reachability", "reachable") != "reachable":
                return False
        return any(e.get("ManagerStatus", {}).get("Leader") for e in entries)

    def wait_healthy(self, timeout: float = 90) -> float:
        """Wait until every running node is ready, every running manager reachable, with a leader."""
        return wait_until(self._healthy, timeout, "every running node ready with a leader", 0.5)

    def wait_state(self, name: str, state: str, timeout: float = 90, via: Node | None = None) -> float:
        """Wait until the managers report node ``name`` in ``state`` (``ready``, ``down``)."""
        def reached() -> bool:
            try:
                return self.states(via).get(name) == state
            except RuntimeError:
                return False

        return wait_until(reached, timeout, f"{name} to be {state}", 0.25)

    def label(self, name: str, key: str, value: str | None) -> None:
        """Set (or with ``None`` remove) a node label, as ``docker node update --label-add``."""
        node = self.node(name)
        for _ in range(10):
            manager = next(m for m in self.managers if m.running)
            with manager.api() as api:
                spec_node = api.inspect_node(node.node_id)
                spec = spec_node["Spec"]
                labels = dict(spec.get("Labels") or {})
                if value is None:
                    labels.pop(key, None)
                else:
                    labels[key] = value
                spec["Labels"] = labels
                try:
                    api.update_node(node.node_id, spec_node["Version"]["Index"], spec)
                    return
                except docker.errors.APIError as err:
                    if "out of sequence" not in str(err):
                        raise
        raise RuntimeError(f"could not label {name}")

    # -- images

    def load_image(self, tag: str, nodes: Iterable[str] | None = None) -> None:
        """``docker save TAG`` on the host engine, ``docker load`` on every (running) node."""
        tar = _data_dir(self.prefix) / "images" / (tag.replace("/", "_").replace(":", "_") + ".tar")
        if not tar.exists():
            tar.parent.mkdir(parents=True, exist_ok=True)
            host = docker.from_env(timeout=300)
            try:
                with tar.open("wb") as out:
                    for chunk in host.images.get(tag).save(named=True):
                        out.write(chunk)
            finally:
                host.close()
        targets = [self.node(n) for n in nodes] if nodes is not None else [n for n in self.nodes.values() if n.running]

        def load(node: Node) -> None:
            with node.api(timeout=300) as api, tar.open("rb") as data:
                for _ in api.load_image(data):
                    pass
                api.inspect_image(tag)  # fails loudly if it did not land

        with ThreadPoolExecutor(max(1, len(targets))) as pool:
            list(pool.map(load, targets))

    # -- faults

    def kill(self, name: str) -> None:
        """The machine is lost: its link goes down and every process of it is SIGKILLed at once
        (dockerd, containerd, shims and the containers of its tasks). Its data stays for ``start``."""
        node = self.node(name)
        self._link(node, "down")
        _kill_all(lambda: _pids_in(node.cgroup))
        if node.process is not None:
            node.process.wait()

    def stop(self, name: str, timeout: float = 30) -> None:
        """A clean shutdown: SIGTERM to dockerd (it stops its containers); the link stays up."""
        node = self.node(name)
        if node.process is not None and node.process.poll() is None:
            node.process.terminate()
            try:
                node.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        _kill_all(lambda: _pids_in(node.cgroup))
        if node.process is not None:
            node.process.wait()

    def start(self, name: str, wait: bool = True, timeout: float = 120) -> float:
        """Start a killed or stopped node again with its data; it rejoins the swarm by itself.

        Returns the seconds until the managers report it ready (0 with ``wait=False``).
        """
        node = self.node(name)
        if node.running:
            raise RuntimeError(f"{name} is running")
        start = time.monotonic()
        self._link(node, "up")
        # Pid files of the killed daemons: a pid that is still a zombie (or was reused) would
        # make dockerd refuse to start or wait forever for "its" containerd.
        for stale in (node.socket, node.exec_root.parent / f"{node.name}.pid", node.exec_root / "containerd" / "containerd.pid"):
            stale.unlink(missing_ok=True)
        self._start_engine(node)
        if wait:
            self.wait_healthy(timeout)
            return time.monotonic() - start
        return 0.0

    def describe(self) -> str:
        return json.dumps({n.name: {"role": n.role, "address": n.address, "docker_host": n.docker_host,
                                    "running": n.running} for n in self.nodes.values()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.multinode",
                                     description="Build (and keep until Ctrl-C) or clean up a multi-node swarm on this machine.")
    parser.add_argument("--cleanup", action="store_true", help="only remove what a previous cluster left behind")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX)
    parser.add_argument("--managers", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--image", action="append", default=[], help="an image of the host engine to load on every node")
    args = parser.parse_args(argv)
    if args.cleanup:
        remove_leftovers(args.prefix)
        print(f"removed the leftovers of prefix {args.prefix!r}")
        return 0
    with unwind_on_sigterm(), Cluster(args.managers, args.workers, prefix=args.prefix, images=args.image) as cluster:
        for node in cluster.nodes.values():
            print(f"{node.name:4} {node.role:8} {node.address:16} DOCKER_HOST={node.docker_host}")
        print("Ctrl-C tears it down")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
