"""Log set-up: one line per event, carrying the node id and the Raft term.

The node id is known only once the data directory is open, and the term only
once the control plane runs, so both live in a filter that the shell updates;
every record logged after that carries them.
"""

import logging
import sys


class _NodeContext(logging.Filter):
    node = "-"
    term = "-"

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node
        record.term = self.term
        return True


_context = _NodeContext()


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_context)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s node=%(node)s term=%(term)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class Sampled:
    """A warning a peer can cause at will (a malformed message): logged the first time, then once
    per ``every``, with the count, so that a peer sending nothing else cannot flood the log."""

    def __init__(self, logger: logging.Logger, every: int = 1000) -> None:
        assert every >= 1
        self._logger, self._every, self.count = logger, every, 0

    def warning(self, message: str, *args: object) -> None:
        self.count += 1
        if self.count % self._every == 1 or self._every == 1:
            self._logger.warning(message + " (%d so far)", *args, self.count)


def set_node(node_id: str) -> None:
    _context.node = node_id[:12]


def set_term(term: int) -> None:
    _context.term = str(term)
