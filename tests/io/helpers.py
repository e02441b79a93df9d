"""Stores and runtimes built over a data directory as the node builds them, without its listeners."""

import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import trio

from trionode.config import Config
from trionode.io import data_store
from trionode.io.control import ControlPlane
from trionode.io.node import NodeRuntime
from trionode.io.raft_store import RaftStore


@contextmanager
def node_runtime(data_dir: Path) -> Iterator[NodeRuntime]:
    """Patch ``NodeRuntime.clock_ms`` before entering when the test needs a wall clock: the constructor reads it."""
    config = Config(data_dir=str(data_dir))
    datadir = data_store.open_datadir(config.data_dir)
    try:
        store = data_store.DataStore.recover(datadir.path, config)
        control = ControlPlane(datadir.node_id, RaftStore.recover(datadir.path), ("127.0.0.1", 0), random.Random(1))
        yield NodeRuntime(config, "", datadir, store, control)
    finally:
        datadir.close()


@asynccontextmanager
async def running_store(data_dir: Path) -> AsyncIterator[data_store.DataStore]:
    """The store recovered from ``data_dir`` with its WAL writer running; closed at the end."""
    store = data_store.DataStore.recover(data_dir, Config(data_dir=str(data_dir)))
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        yield store
        await store.close()
        nursery.cancel_scope.cancel()
