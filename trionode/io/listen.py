"""Accept loops that outlive accept() errors, and the open-files budget for clients.

Running out of file descriptors (EMFILE, ENFILE) or kernel memory (ENOBUFS,
ENOMEM) makes accept() fail while the listener itself is fine; trio only
retries the errors that concern one half-open connection. A listener that
ended on such an error would take the node with it, so every accept loop
logs the first failure of a run of them, backs off briefly and goes on, as
trio's own ``serve_listeners`` does.
"""

import logging
import resource
from collections.abc import Awaitable, Callable
from typing import NoReturn

import trio

from trionode import limits

log = logging.getLogger("trionode.listen")


async def accept_forever(
    listener: trio.SocketListener, handle: Callable[[trio.SocketStream], Awaitable[None]], nursery: trio.Nursery,
    what: str,
) -> NoReturn:
    """Accept on ``listener`` until cancelled, running ``handle(stream)`` in ``nursery`` for each connection."""
    async with listener:
        failing = False
        while True:
            try:
                stream = await listener.accept()
            except OSError as e:
                if not failing:
                    log.warning("%s listener: accept() failed (%s); retrying every %d ms",
                                what, e.strerror or e, limits.accept_backoff_ms)
                failing = True
                await trio.sleep(limits.accept_backoff_ms / 1000)
                continue
            if failing:
                log.info("%s listener: accepting again", what)
                failing = False
            nursery.start_soon(handle, stream)
    raise AssertionError("unreachable")


def clients_max_within(files_max: int, clients_max: int) -> int:
    """The clients a process allowed ``files_max`` descriptors can serve, at most ``clients_max``."""
    return max(0, min(clients_max, files_max - limits.fds_reserved - limits.fds_bus_max))


def fit_open_files(clients_max: int) -> int:
    """Raise the soft open-files limit towards the hard one; return the clients it can cover.

    As Redis does with maxclients: a limit too low for ``clients_max`` lowers it, and says so.
    """
    wanted = clients_max + limits.fds_reserved + limits.fds_bus_max
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, e)
    if soft == resource.RLIM_INFINITY:
        return clients_max
    fitted = clients_max_within(soft, clients_max)
    if fitted < clients_max:
        log.warning("the open-files limit is %d (hard limit %s): clients_max lowered from %d to %d "
                    "(raise it with ulimit -n or LimitNOFILE)", soft, hard, clients_max, fitted)
    return fitted
