"""One trionode process: the root nursery and the tasks it supervises.

Startup is ordered so that every refusal happens before the node serves:
lock the data directory, bind the client port, recover the snapshot and the
WAL, re-apply the committed Raft log, configure replication from the state it
yields (never from ``raft.snap`` alone, which can be stale), and only then
accept clients. The root nursery runs the WAL writer, the
client listener, active expiry, periodic compaction and the signal watcher.
Any of them crashing cancels the others and takes the process down loudly;
nothing is left half alive.

A clean shutdown (SIGTERM, SIGINT, SHUTDOWN) stops taking commands, lets the
WAL acknowledge everything already applied, writes a final snapshot, hands
Raft leadership over and compacts the Raft log, and only then exits.
"""

import logging
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import trio

from trionode import __version__, limits
from trionode.config import Config
from trionode.core import routing
from trionode.core.auth import Users
from trionode.core.cluster.commands import command
from trionode.core.cluster.view import cluster_view, solo_shard_id, status_dict, unhealthy_reasons
from trionode.core.cluster_view import ClusterView, NodeView
from trionode.core.command_spec import CommandSpec
from trionode.core.keyspace import KEYSPACE_COMMANDS
from trionode.core.migration.commands import migration_row_status
from trionode.core.server_specs import SERVER_COMMANDS
from trionode.core.session import Node, NodeFacts
from trionode.io import data_store, tls
from trionode.io.cluster_secret import ClusterSecret
from trionode.io.control import ControlPlane, monotonic_ms
from trionode.io.datadir import DataDir
from trionode.io.failover import FailoverDriver
from trionode.io.fatal import StartupError
from trionode.io.gossip_driver import GossipDriver
from trionode.io.listen import fit_open_files
from trionode.io.migration import MigrationShell
from trionode.io.raft_store import RaftStore
from trionode.io.replication import Replication
from trionode.io.resp_server import serve_listeners

log = logging.getLogger("trionode.node")


@dataclass(slots=True)
class Stats:
    commands: int = 0
    connected: int = 0
    connections_total: int = 0
    expired_keys: int = 0
    compactions: int = 0
    last_compaction_ms: int = 0


def _command_table() -> dict[bytes, CommandSpec]:
    table = {**KEYSPACE_COMMANDS, **SERVER_COMMANDS}
    return {name.encode(): spec for name, spec in table.items()}


class NodeRuntime:
    """The shell's view of a running node: what its tasks share."""

    def __init__(
        self, config: Config, config_file: str, datadir: DataDir, store: data_store.DataStore, control: ControlPlane
    ) -> None:
        self.config = config
        self.datadir = datadir
        self.node_id = datadir.node_id
        self.store = store
        self.control = control
        self.data = store.data
        self.stats = Stats()
        self.shutting_down = False
        self.shutdown_requested = trio.Event()
        self.cluster_secret = ClusterSecret(datadir.path, config.cluster_secret)
        control.bus.secret = self.cluster_secret.key
        self._rng = random.Random(int.from_bytes(os.urandom(8), "little"))
        facts = NodeFacts(
            node_id=datadir.node_id,
            shard_id=datadir.node_id,  # a single node is its own shard until the control plane says otherwise
            host=config.effective_announce_ip,
            port=config.port,  # INFO server's tcp_port, the plain RESP port as in Redis (CLUSTER MEET dials it)
            bus_port=config.effective_bus_announce_port,
            process_id=os.getpid(),
            started_ms=self.clock_ms(),
            config_file=config_file,
            version=__version__,
        )
        self.node = Node(
            data=self.data,
            table=_command_table(),
            facts=facts,
            shell_info=self.info_sections,
            routing=routing.not_a_member(),
            cluster_view=self.cluster_view,
            # requirepass holds from the first instant, before the cluster state's users are followed.
            users=Users.build(config.requirepass),
        )
        # The state's users node.users was built from, and the versions that made them.
        self._acl_users: tuple[dict[str, tuple[str, ...]], dict[str, int]] = ({}, {})
        self.replication = Replication(self.node_id, store, control)  # monotonic timers (issue 10 §2.9)
        # Failure detection times silence on the monotonic clock; the wall clock is for key expiry.
        self.gossip = GossipDriver(self.node_id, config.node_timeout_ms, control.bus, monotonic_ms, self._rng,
                                   incarnation=self.clock_ms())
        control.bus_handlers["gossip"] = self.gossip.on_message
        control.failed_nodes = lambda: self.gossip.detector.failed(monotonic_ms())
        self.failover = FailoverDriver(self)
        self.migration = MigrationShell(self)
        self.node.migration_rows = self.migration.rows
        self.replication.on_serving_change = self.refresh_routing
        store.on_disk_full = self.refresh_routing

    def follow_config(self) -> None:
        """Configure replication, gossip and routing from the applied state, and follow it from now on.

        Called once the control plane has re-applied the committed log tail: ``raft.snap``
        alone can be older than the data, and may name this node primary at an epoch its
        data history has moved past (which no primary tracker may start from).
        """
        self.control.on_change(self._config_changed)
        self._config_changed()

    def _config_changed(self) -> None:
        state = self.control.state
        if (state.acl_users, state.acl_users_created) != self._acl_users:  # most entries change no user
            self._acl_users = (dict(state.acl_users), dict(state.acl_users_created))
            self.node.set_users(Users.build(self.config.requirepass, *self._acl_users))
        self.replication.on_config(self.control.state)
        self.migration.on_config()
        voters = self.control.rawnode.conf.voters if self.control.rawnode is not None else ()
        self.gossip.on_config(self.control.state, voters)
        self.refresh_routing()

    # --- the cluster as this node sees it ---------------------------------------
    def refresh_routing(self) -> None:
        disk_full = self.store.wal.disk_full
        self.node.routing = routing.from_cluster_state(
            self.control.state, self.node_id, min_insync_replicas=self.config.min_insync_replicas,
            replica_serving=self.replica_serving(), disk_full=disk_full, paused=self.migration.paused_slots(),
        )
        # A read must not wait for space either: expired keys read as absent until a DEL can be logged.
        self.data.keyspace.expire_deletes = not disk_full

    def replica_serving(self) -> bool:
        """A replica serves READONLY reads only while it streams from its primary (never while loading)."""
        return self.replication.serving_reads()

    def cluster_health(self) -> dict[str, str]:
        """online / suspect / failed from the failure detector; loading from replication."""
        health = {node_id: "online" for node_id in self.control.state.nodes}
        health.update({n: h for n, h in self.gossip.healths().items() if n in health})
        health.update(self.replication.health())
        return health

    def _offsets(self) -> dict[str, int]:
        return self.replication.offsets()

    def cluster_view(self) -> ClusterView:
        state = self.control.state
        if self.node_id not in state.nodes:
            return self._alone_view()
        covered = all(owner is not None for owner in state.slot_owners)
        health, offsets = self.cluster_health(), self._offsets()
        return cluster_view(state, self.node_id, health=health, offsets=offsets, state_ok=covered)

    def _alone_view(self) -> ClusterView:
        """What CLUSTER replies show on a node that is not in a cluster yet: itself, owning nothing."""
        cfg = self.config
        me = NodeView(
            id=self.node_id, ip=cfg.effective_announce_ip, port=cfg.effective_announce_port,
            bus_port=cfg.effective_bus_announce_port, role="primary",
            primary_id=None, shard_id=solo_shard_id(self.node_id),
        )
        return ClusterView(myself_id=self.node_id, current_epoch=0, nodes=(me,), state_ok=False)

    def _raft_roles(self) -> dict[str, str]:
        control = self.control
        if control.rawnode is None:
            return {}
        conf = control.rawnode.conf
        roles = {node_id: "follower" for node_id in conf.voters}
        roles.update({node_id: "learner" for node_id in conf.learners})
        if control.leader:
            roles[control.leader] = "leader"
        if control.role == "candidate":
            roles[self.node_id] = "candidate"
        return roles

    def status_report(self) -> dict[str, Any]:
        control = self.control
        raft = control.rawnode.status() if control.rawnode is not None else None
        report = status_dict(
            control.state, health=self.cluster_health(), offsets=self._offsets(), raft_roles=self._raft_roles()
        )
        problems = unhealthy_reasons(control.state, self.cluster_health())
        if not control.leader:
            problems.insert(0, "no Raft leader is known")
        if not control.state.bootstrapped:
            problems.insert(0, "this node is not part of a cluster")
        for what, full in (("Raft log", control.store.disk_full), ("data WAL", self.store.wal.disk_full)):
            if full:
                problems.insert(0, f"this node's disk is full: its {what} waits for space")
        report.update(
            cluster_id=control.store.cluster_id or None,
            node_id=self.node_id,
            leader_id=control.leader or None,
            term=raft.term if raft else 0,
            commit_index=raft.commit if raft else 0,
            applied_index=control.state.applied_index,
            healthy=not problems,
            problems=problems,
            local={"keys": len(self.data.keyspace), **self.store.info()},
            migration_jobs=[migration_row_status(row) for row in self.migration.rows()],
        )
        return report

    async def bootstrap(self, with_all_slots: bool = False) -> None:
        """Form a new cluster around this node (CLUSTER BOOTSTRAP, or the embedded default)."""
        cfg = self.config
        self.cluster_secret.make()
        await self.control.bootstrap(cfg.effective_announce_ip, cfg.effective_announce_port,
                                     cfg.effective_bus_announce_port)
        if with_all_slots:
            state = self.control.state
            shard_id = self.node_id
            await self.control.submit(
                command("shard_create", shard_id=shard_id, epoch=state.epoch_max + 1, primary_id=self.node_id)
            )
            epoch = self.control.state.shards[shard_id].epoch
            await self.control.submit(
                command("slots_assign", shard_id=shard_id, epoch=epoch, slots=[(0, limits.slots_count - 1)])
            )

    @property
    def wal(self) -> Any:
        return self.store.wal  # replaced by a full resync, so never cached

    @staticmethod
    def clock_ms() -> int:
        return time.time_ns() // 1_000_000

    def next_client_id(self) -> int:
        self.stats.connections_total += 1
        return self.stats.connections_total

    def log_outbox(self) -> None:
        if self.data.outbox:
            self.store.log_outbox()
            self.replication.on_appended()

    async def wait_acked(self, offset: int) -> None:
        await self.store.wait_acked(offset)

    async def wait_replicas(self, offset: int, replicas: int, timeout_ms: int) -> int:
        """WAIT: replicas holding ``offset`` durably, once ``replicas`` do or the timeout passes (0: no timeout)."""
        await self.wait_acked(offset)
        repl = self.replication
        with trio.move_on_after(timeout_ms / 1000 if timeout_ms else float("inf")):
            while repl.wait_count(offset) < replicas:
                await repl.acks_changed()
        return repl.wait_count(offset)

    def request_shutdown(self, reason: str) -> None:
        if not self.shutdown_requested.is_set():
            log.info("shutdown requested: %s", reason)
            self.shutdown_requested.set()

    def info_sections(self) -> dict[str, dict[str, Any]]:
        return {
            "clients": {"connected_clients": self.stats.connected, "maxclients": self.config.clients_max},
            "persistence": self.store.info(),
            "cluster": self._cluster_info(),
            "replication": self.replication.info(self.control.state),
            "stats": {
                "total_connections_received": self.stats.connections_total,
                "total_commands_processed": self.stats.commands,
                "expired_keys": self.stats.expired_keys,
            },
        }

    def _cluster_info(self) -> dict[str, Any]:
        control = self.control
        return {
            "cluster_id": control.store.cluster_id,
            "cluster_bus_port": self.config.effective_bus_announce_port,
            "cluster_client_port": self.config.effective_announce_port,
            "raft_role": control.role,
            "raft_leader": control.leader,
            "raft_term": control.term,
            "raft_applied": control.state.applied_index,
        }

    # --- background tasks -------------------------------------------------
    async def expire_loop(self) -> None:
        while True:
            await trio.sleep(limits.expire_cycle_interval_ms / 1000)
            if self.shutting_down:
                continue
            # Only a primary whose lease holds expires keys (Node.write_gate, as in the simulator);
            # replicas delete when its DEL arrives.
            self.stats.expired_keys += self.node.expire_some(self.clock_ms(), monotonic_ms(), self._rng,
                                                             wal_room=self.wal.has_room())  # fmt: skip
            self.log_outbox()

    async def lazyfree_loop(self) -> None:
        """Free the big values commands dropped, a bounded step per turn of the event loop."""
        while True:
            garbage = self.data.keyspace.garbage  # looked up each time: a full resync replaces the keyspace
            if garbage:
                garbage.release(limits.lazyfree_members_per_step)
                await trio.sleep(0)
            else:
                await trio.sleep(limits.lazyfree_idle_ms / 1000)

    async def compact_loop(self) -> None:
        while True:
            await trio.sleep(limits.compact_check_interval_ms / 1000)
            if self.store.wants_compaction(self.config):
                await self.store.compact()

    async def signal_loop(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                self.request_shutdown(reason=signal.Signals(signum).name)


async def run(config: Config, config_file: str = "", *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Run a node until it is shut down. Raises StartupError for anything that stops it starting."""
    clients_max = fit_open_files(config.clients_max)
    if clients_max < 1:
        raise StartupError("the open-files limit is too low to serve any client; raise it with ulimit -n")
    config = replace(config, clients_max=clients_max)
    tls_context = tls.server_context(config) if config.tls_port else None
    datadir = data_store.open_datadir(config.data_dir)
    try:
        listeners = await _bind(config.bind, config.port, "client")
        tls_listeners = await _bind(config.bind, config.tls_port, "TLS client") if config.tls_port else []
        bus_listeners = await _bind(config.bind, config.effective_bus_port, "cluster bus")
        store = data_store.DataStore.recover(datadir.path, config)
        raft_store = RaftStore.recover(datadir.path)
        rng = random.Random(int.from_bytes(os.urandom(8), "little"))
        bus_addr = (config.effective_announce_ip, config.effective_bus_announce_port)
        control = ControlPlane(datadir.node_id, raft_store, bus_addr, rng)
        runtime = NodeRuntime(config, config_file, datadir, store, control)
        _log_started(runtime, store)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await nursery.start(control.run, bus_listeners)  # re-applies the committed log first
            runtime.follow_config()
            if config.bootstrap and not raft_store.cluster_id:
                await runtime.bootstrap(with_all_slots=True)
            await nursery.start(runtime.failover.run)  # the first lease before the first client
            await nursery.start(runtime.migration.run)
            serving = trio.CancelScope()
            serve = partial(serve_listeners, runtime, listeners, tls_listeners, tls_context)
            nursery.start_soon(_serve, serving, serve)
            loops = (runtime.expire_loop, runtime.lazyfree_loop, runtime.compact_loop, runtime.signal_loop,
                     runtime.replication.run, runtime.gossip.run)
            for loop in loops:
                nursery.start_soon(loop)
            task_status.started(runtime)
            await runtime.shutdown_requested.wait()
            await _shut_down(runtime, serving)
            nursery.cancel_scope.cancel()
    finally:
        datadir.close()


async def _serve(scope: trio.CancelScope, serve: Callable[[], Awaitable[None]]) -> None:
    with scope:
        await serve()


async def _shut_down(runtime: NodeRuntime, serving: trio.CancelScope) -> None:
    runtime.shutting_down = True
    runtime.log_outbox()
    # Give writes in flight a bounded chance to be acknowledged (the ISR may be gone), and the
    # connections they wake a moment to send their replies.
    with trio.move_on_after(limits.shutdown_grace_ms / 1000):
        await runtime.wait_acked(runtime.data.applied_offset)
        while runtime.store.replies_waiting():
            await trio.sleep(0.01)
    serving.cancel()
    if not runtime.store.wal.disk_full:  # a snapshot would wait for space that may never come
        await runtime.store.compact()
    await runtime.store.close()
    await runtime.control.shut_down()
    log.info("shutdown complete; final snapshot at offset %d", runtime.data.applied_offset)


async def _bind(host: str, port: int, what: str) -> list[trio.SocketListener]:
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as e:
        raise StartupError(f"cannot listen on {host}:{port} ({what} port): {e.strerror or e}") from None


def _log_started(runtime: NodeRuntime, store: data_store.DataStore) -> None:
    log.info(
        "node %s serving on %s:%d, data in %s, offset %d (%s)",
        runtime.datadir.node_id,
        runtime.config.bind,
        runtime.config.port,
        runtime.datadir.path,
        runtime.data.applied_offset,
        store.recovery_summary,
    )
    if runtime.config.tls_port:
        log.info("serving TLS clients on %s:%d", runtime.config.bind, runtime.config.tls_port)
    if (warning := runtime.config.announce_warning()) is not None:
        log.warning("%s", warning)
    if runtime.control.store.cluster_id and runtime.cluster_secret.key() is None:
        log.error("this node belongs to cluster %s but has no cluster secret, so the bus refuses every peer: set "
                  "'cluster_secret' or copy cluster.secret from another node's data directory",
                  runtime.control.store.cluster_id)


__all__ = ["NodeRuntime", "StartupError", "run"]
