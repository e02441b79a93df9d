"""Why a node stopped on its own: one line and an exit status for the operator.

Whatever ends ``trio.run`` reaches the command line as an exception, and since
trio 0.25 anything that leaves a nursery does so inside an ``ExceptionGroup``
(the root nursery's, and the groups of the nurseries under it). The first
failure is usually joined by its consequences: waiters that learn the WAL
writer died, tasks cancelled on the way out. :func:`diagnose` looks through the
groups for the cause and names it in one line with one of the exit statuses
documented in the README ("Operating it"):

- ``EXIT_STARTUP`` (1): the node refused to start (configuration, port, lock);
- ``EXIT_CORRUPTION`` (2): a WAL or snapshot is corrupt (S6);
- ``EXIT_STORAGE`` (3): a write or fsync of the node's files failed. DESIGN §3
  makes that fatal and never retried: the page cache can no longer be trusted;
- ``EXIT_INTERNAL`` (4): a broken invariant (an assertion) or another bug.
"""

import traceback
from dataclasses import dataclass

import trio

from trionode.config import ConfigError
from trionode.core.wal.codec import WalCorruption
from trionode.io.datadir import DataDirError

EXIT_STARTUP = 1
EXIT_CORRUPTION = 2
EXIT_STORAGE = 3
EXIT_INTERNAL = 4


class StartupError(Exception):
    """The node cannot start; the message is one line naming why."""


class StorageFailed(Exception):
    """Writing or fsyncing one of the node's files failed: the node must stop (DESIGN §3)."""


@dataclass(frozen=True, slots=True)
class Diagnosis:
    exit_code: int
    message: str  # one line
    cause: BaseException


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc``'s (nested) groups, in order, without cancellations."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [] if isinstance(exc, trio.Cancelled) else [exc]


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _classify(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, ConfigError | DataDirError | StartupError):
        return EXIT_STARTUP, str(exc)
    if isinstance(exc, WalCorruption):
        return EXIT_CORRUPTION, f"{exc} (refusing to go on; run 'trionode wal check' on the data directory)"
    if isinstance(exc, StorageFailed):
        return EXIT_STORAGE, f"{exc}; stopping without retrying (DESIGN §3)"
    if isinstance(exc, OSError):
        what = f"{exc.filename}: " if exc.filename else ""
        return EXIT_STORAGE, f"I/O error: {what}{exc.strerror or exc}; stopping without retrying"
    if isinstance(exc, AssertionError):
        return EXIT_INTERNAL, f"broken invariant{_where(exc)}: {exc or 'assertion failed'}"
    return EXIT_INTERNAL, f"internal error{_where(exc)}: {type(exc).__name__}: {exc}"


# The cause of a stop, most specific first: a storage failure explains the waiters that died of it.
_PRECEDENCE = (EXIT_STORAGE, EXIT_CORRUPTION, EXIT_STARTUP, EXIT_INTERNAL)


def diagnose(exc: BaseException) -> Diagnosis | None:
    """The cause of ``exc`` in one line; None when it holds nothing but cancellations."""
    found = [(_classify(leaf), leaf) for leaf in leaves(exc)]
    if not found:
        return None
    (code, message), cause = min(found, key=lambda item: _PRECEDENCE.index(item[0][0]))
    return Diagnosis(code, _one_line(message), cause)
