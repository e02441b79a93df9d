"""A local trionode cluster of real processes, for drills.

Layout: five nodes. ``trionode cluster create`` makes n1 and n2 the primaries
of two shards (half the slots each) with n3 and n4 as their replicas; n5 joins
as a spare member, so Raft has five voters and replica churn has a node to
swap in. Every node listens on 127.0.0.1 only. Each node's bus port is hidden
behind a :class:`~.proxy.BusProxy` port that the node announces
(``bus_announce_port``), so every node-to-node link passes the proxy and a
drill can cut any pair.

Everything a node writes to stdout/stderr goes to ``<run>/logs/<name>.log``,
across all of its lives. With ``clock_shim``, every node starts with
``clockshim/sitecustomize.py`` loaded, so that :meth:`Node.set_clock_offset`
can step its wall clock (the clock-step drill). :meth:`LocalCluster.close` kills every process it
started, paused or not.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from .proxy import BusProxy

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 2.0
NODES = 5
REPLICAS_PER_PRIMARY = 1
CREATE_NODES = 4  # n1..n4 form two shards; n5 is the spare
CLOCK_SHIM = Path(__file__).resolve().parent / "clockshim"


class ClusterError(RuntimeError):
    """The cluster did not reach a state the drill needs (a finding in itself: see the logs)."""


class PortPool:
    """Free loopback ports, never the same one twice in a run."""

    def __init__(self) -> None:
        self._taken: set[int] = set()

    def take(self) -> int:
        for _ in range(1000):
            with socket.socket() as s:
                s.bind((HOST, 0))
                port = s.getsockname()[1]
            if port not in self._taken:
                self._taken.add(port)
                return port
        raise ClusterError("no free loopback port found")


@dataclass
class Node:
    """One node process: its ports, files and (after start) its id."""

    name: str
    port: int
    bus_port: int
    announce_port: int
    run_dir: Path
    node_timeout_ms: int
    node_id: str = ""
    proc: subprocess.Popen | None = None
    paused: bool = False
    killed: bool = False  # by the drill: an exit the drill did not cause is a crash
    lives: int = 0
    extra_conf: str = field(default="")
    env: dict[str, str] = field(default_factory=dict)  # added to the process environment

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data" / self.name

    @property
    def log_path(self) -> Path:
        return self.run_dir / "logs" / f"{self.name}.log"

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def crashed(self) -> bool:
        """The process exited on its own (not killed by the drill)."""
        return self.proc is not None and not self.alive and not self.killed

    def write_conf(self) -> Path:
        conf = self.run_dir / "conf" / f"{self.name}.toml"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            f'bind = "{HOST}"\nport = {self.port}\nbus_port = {self.bus_port}\n'
            f"bus_announce_port = {self.announce_port}\n"
            f'data_dir = "{self.data_dir}"\nbootstrap = false\n'
            f"node_timeout_ms = {self.node_timeout_ms}\n" + self.extra_conf
        )
        return conf

    def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        conf = self.write_conf()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- drill: starting {self.name} (life {self.lives + 1}) ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "trionode", "start", "--conf", str(conf)],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            )  # fmt: skip
        self.paused = False
        self.killed = False
        self.lives += 1

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive:
                raise ClusterError(f"{self.name} exited with {self.proc and self.proc.returncode}; see {self.log_path}")
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise ClusterError(f"{self.name} did not answer PING within {timeout_s:.0f}s; see {self.log_path}")

    def client(self, timeout_s: float = CALL_TIMEOUT_S) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    def call(self, *args: Any, timeout_s: float = CALL_TIMEOUT_S) -> Any:
        client = self.client(timeout_s)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    @property
    def clock_file(self) -> Path:
        return self.run_dir / "clock" / f"{self.name}.offset-ms"

    def use_clock_shim(self) -> None:
        """Start (from the next life on) with a wall clock :meth:`set_clock_offset` can step."""
        self.set_clock_offset(0.0)
        path = os.pathsep.join(p for p in (str(CLOCK_SHIM), os.environ.get("PYTHONPATH", "")) if p)
        self.env.update(PYTHONPATH=path, TRIONODE_DRILL_CLOCK_FILE=str(self.clock_file))

    def set_clock_offset(self, offset_s: float) -> None:
        """Step this node's wall clock to real time + ``offset_s`` (it notices within 20 ms)."""
        self.clock_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(f"{offset_s * 1000:.0f}\n")
        os.replace(tmp, self.clock_file)

    def kill9(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.paused = False
        self.killed = True

    def pause(self) -> None:
        assert self.alive and self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.alive and self.paused:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False


def processes_running(conf_dir: str) -> list[int]:
    """Pids of ``trionode start`` processes whose configuration lies in ``conf_dir``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if b"trionode" in argv and b"start" in argv and any(a.startswith(conf_dir.encode()) for a in argv):
            pids.append(int(entry.name))
    return pids


class LocalCluster:
    """Five real nodes behind a bus proxy; see the module docstring."""

    def __init__(self, run_dir: Path, node_timeout_ms: int, extra_conf: str = "", clock_shim: bool = False) -> None:
        self.run_dir = run_dir
        self.proxy = BusProxy(HOST)
        ports = PortPool()
        self.nodes = [
            Node(f"n{i + 1}", ports.take(), ports.take(), ports.take(), run_dir, node_timeout_ms, extra_conf=extra_conf)
            for i in range(NODES)
        ]
        for node in self.nodes:
            self.proxy.add_route(node.announce_port, node.bus_port)
            if clock_shim:
                node.use_clock_shim()

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start every node, form the cluster and wait until it serves every slot."""
        self.proxy.start()
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready()
            node.node_id = node.call("CLUSTER", "MYID").decode()
        self._cli("cluster", "create", *(n.addr for n in self.nodes[:CREATE_NODES]),
                  "--replicas", str(REPLICAS_PER_PRIMARY), "--yes")  # fmt: skip
        self._cli("cluster", "add-node", self.nodes[-1].addr, self.nodes[0].addr)
        self.wait_settled(60.0)

    def close(self) -> None:
        for node in self.nodes:
            node.resume()
            node.kill9()
        # A signal that stopped the drill inside a node's Popen (the process started, its handle
        # never stored) leaves a node no Node knows of: find it by the configuration it runs.
        for pid in processes_running(str(self.run_dir / "conf")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proxy.stop()

    def _cli(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "trionode", *args], capture_output=True, text=True,
                             timeout=120, cwd=ROOT)  # fmt: skip
        if out.returncode != 0:
            raise ClusterError(f"trionode {' '.join(args)} failed: {out.stderr.strip() or out.stdout.strip()}")
        return out.stdout

    # --- what the cluster says about itself ----------------------------------------

    def by_id(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)

    def status(self, prefer: Node | None = None) -> dict[str, Any] | None:
        """CLUSTER STATUS from the first reachable node (``prefer`` first); None if none answers."""
        order = ([prefer] if prefer else []) + [n for n in self.nodes if n is not prefer]
        for node in order:
            if not node.alive or node.paused:
                continue
            try:
                return json.loads(node.call("CLUSTER", "STATUS"))
            except (redis.RedisError, ValueError):
                continue
        return None

    def leader_status(self) -> dict[str, Any] | None:
        """The status as the current Raft leader reports it (the freshest view), if one answers."""
        seen = self.status()
        if not seen or not seen.get("leader_id"):
            return None
        try:
            leader = self.by_id(seen["leader_id"])
        except StopIteration:
            return None
        if not leader.alive or leader.paused:
            return None
        report = self.status(prefer=leader)
        return report if report and report.get("node_id") == leader.node_id else None

    def shards(self) -> list[dict[str, Any]]:
        report = self.leader_status() or self.status() or {}
        return list(report.get("shards", []))

    def primaries(self) -> list[Node]:
        return [self.by_id(s["primary_id"]) for s in self.shards() if s.get("primary_id")]

    def replicas(self) -> list[Node]:
        return [self.by_id(r) for s in self.shards() for r in s.get("replica_ids", [])]

    def leader(self) -> Node | None:
        report = self.leader_status()
        return self.by_id(report["leader_id"]) if report else None

    def settled(self) -> bool:
        """The leader's view: healthy, and every shard's primary running and serving writes."""
        report = self.leader_status()
        if not report or not report.get("healthy"):
            return False
        for shard in report.get("shards", []):
            primary = self.by_id(shard["primary_id"])
            if not primary.alive or primary.paused or not _answers(primary):
                return False
        return True

    def wait_settled(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.settled():
                return
            time.sleep(0.2)
        raise ClusterError(f"the cluster did not settle within {timeout_s:.0f}s: {self.status()}")


def _answers(node: Node) -> bool:
    try:
        return bool(node.call("PING"))
    except redis.RedisError:
        return False
