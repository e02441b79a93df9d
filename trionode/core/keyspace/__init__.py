"""The keyspace core: data types, expiry and the data commands (see store.py)."""

from trionode.core.keyspace.store import Keyspace
from trionode.core.keyspace.table import KEYSPACE_COMMANDS, execute

__all__ = ["KEYSPACE_COMMANDS", "Keyspace", "execute"]
