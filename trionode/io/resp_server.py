"""The RESP listener: one task per client connection.

A connection reads what the socket has, executes every complete command in it
(pipelining), appends the resulting effects to the data WAL, waits until the
WAL has acknowledged every offset the replies depend on, and then sends all the
replies in one write. Waiting per batch rather than per command is what lets
one fsync cover many commands and many connections (group commit).
"""

import contextlib
import logging
import ssl
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from trionode import limits
from trionode.core import errors
from trionode.core.auth import protected_refusal
from trionode.core.errors import CommandError
from trionode.core.reply import OK, Action, ErrorReply
from trionode.core.resp import NEED_DATA, ProtocolError, RequestParser, encode_into
from trionode.core.session import Session
from trionode.io import cluster_admin
from trionode.io.control import monotonic_ms
from trionode.io.data_store import AckAborted
from trionode.io.listen import accept_forever
from trionode.io.tls import handshake, socket_of
from trionode.io.wal_writer import WalFailed

if TYPE_CHECKING:
    from trionode.io.node import NodeRuntime

log = logging.getLogger("trionode.resp")


class _Close(Exception):
    """Ends one connection after its pending replies were sent."""


class Connection:
    def __init__(self, runtime: "NodeRuntime", stream: trio.abc.Stream, client_id: int, addr: str) -> None:
        cfg = runtime.config
        self.runtime = runtime
        self.stream = stream
        self.session = Session(runtime.node, client_id, addr)
        self.parser = RequestParser(
            bulk_bytes_max=cfg.resp_bulk_bytes_max,
            args_max=cfg.resp_args_max,
            inline_bytes_max=cfg.resp_inline_bytes_max,
            auth_required=self.session.user is None,
        )
        self.out = bytearray()
        self.required = 0

    async def serve(self) -> None:
        try:
            while True:
                data = await self.stream.receive_some(limits.resp_read_bytes)
                if not data:
                    return
                self.parser.feed(data)
                await self._run_available()
                await self._flush()
        except _Close:
            with contextlib.suppress(AckAborted):
                await self._flush()
        except AckAborted as e:
            # The writes behind the buffered replies have an unknown outcome: never send their
            # OKs. Closing the connection tells the client exactly that.
            log.info("closing %s: %s", self.session.addr, e)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def _run_available(self) -> None:
        """Execute every complete command buffered, flushing when a bound is reached."""
        runtime, session, out = self.runtime, self.session, self.out
        parser = self.parser
        next_command, execute, has_room = parser.next_command, session.execute, runtime.wal.has_room
        # One clock read per batch, and again after every wait, so no command's lease check
        # (Session.execute) runs on a time read before an await.
        self._stamp()
        executed = 0
        try:
            # Before each request is parsed, its bounds follow whether the session is authenticated
            # now: AUTH or HELLO AUTH lifts them for the next request, and deleting the user (at any
            # await, even mid-batch) logs the session out and restores them.
            while True:
                parser.auth_required = session.user is None
                if (argv := next_command()) is NEED_DATA:
                    break
                if runtime.shutting_down or not has_room():
                    await self._wait_for_room()
                reply, required = execute(argv)
                if type(reply) is Action:
                    await self._act(reply)
                    self._stamp()  # WAIT and CLUSTER wait: a lease may have run out meanwhile
                else:
                    encode_into(out, reply, session.proto)
                    if required > self.required:
                        self.required = required
                executed += 1
                if executed % limits.resp_pipeline_commands_max == 0 or len(out) >= limits.resp_reply_bytes_max:
                    await self._flush()
                    self._stamp()
        except ProtocolError as e:
            self._reply(ErrorReply(str(e)), 0)
            raise _Close from None
        finally:
            runtime.stats.commands += executed

    def _stamp(self) -> None:
        self.session.now_ms = self.runtime.clock_ms()
        self.session.mono_ms = monotonic_ms()

    async def _wait_for_room(self) -> None:
        """The WAL is full or the node is stopping: send what we have, then wait or close."""
        runtime = self.runtime
        await self._flush()
        if runtime.shutting_down:
            self._reply(ErrorReply(errors.SHUTTING_DOWN), 0)
            raise _Close
        await runtime.wal.wait_room()
        self._stamp()

    def _reply(self, reply: Any, required: int) -> None:
        encode_into(self.out, reply, self.session.proto)
        if required > self.required:
            self.required = required

    async def _flush(self) -> None:
        """Log the effects, wait until the replies' writes are durable, then send them."""
        runtime = self.runtime
        runtime.log_outbox()
        if self.required:
            await runtime.wait_acked(self.required)
            self.required = 0
        if self.out:
            await self.stream.send_all(self.out)
            self.out.clear()

    async def _act(self, action: Action) -> None:
        if action.kind == "quit":
            self._reply(OK, 0)
            raise _Close
        if action.kind == "cluster":
            await self._flush()
            self._reply(await cluster_admin.run(self.runtime, action.args[0]), 0)
            return
        if action.kind == "paused":
            self._reply(*await self._run_paused(action.args[0]))
            return
        if action.kind == "importing":
            self._reply(*await self._run_importing(*action.args))
            return
        if action.kind == "migration":
            try:
                self._reply(self.runtime.migration.command(action.args[0]), 0)
            except CommandError as e:
                self._reply(ErrorReply(str(e)), 0)
            return
        if action.kind == "wait":
            await self._flush()
            count = await self.runtime.wait_replicas(self.session.last_write_offset, *action.args)
            self._reply(count, 0)
            return
        assert action.kind == "shutdown", action
        await self._flush()
        self.runtime.request_shutdown(reason=f"SHUTDOWN from client {self.session.addr}")
        raise _Close


    async def _run_paused(self, argv: list[bytes]) -> tuple[Any, int]:
        """A command on a slot in a migration's handover: wait until the pause ends, then run it again.

        It then runs here (the migration aborted) or gets MOVED to the target (it committed).
        The wait is bounded; past it the client is told to retry, the write not made.
        """
        await self._flush()
        deadline = trio.current_time() + limits.migration_paused_wait_ms_max / 1000
        while True:
            self._stamp()
            reply, required = self.session.execute(argv)
            if type(reply) is not Action:
                return reply, required
            if reply.kind == "importing":
                return ErrorReply(reply.args[1]), 0  # moved away and straight back: the redirect stands
            if trio.current_time() >= deadline:
                return ErrorReply(errors.PAUSED_TOO_LONG), 0
            with trio.move_on_at(deadline):
                await self.runtime.migration.wait_resumed()

    async def _run_importing(self, argv: list[bytes], redirect: str) -> tuple[Any, int]:
        """A command for a slot this shard's running migration imports: catch up, then run it again.

        The source sends clients here once it has applied the commit, which this node may not have
        applied yet; ``redirect`` (MOVED back to the source) would bounce them between the two. So this
        node first applies what the Raft leader had committed when asked (bounded), and the command
        runs again: it is served if the commit was among that, else the redirect is still right.
        """
        await self._flush()
        await self.runtime.control.catch_up(limits.routing_catch_up_ms_max)
        self._stamp()
        reply, required = self.session.execute(argv)
        if type(reply) is not Action:
            return reply, required
        if reply.kind == "paused":
            return await self._run_paused(argv)  # committed, and already in a handover back out
        return ErrorReply(reply.args[1]), 0


async def serve_listeners(
    runtime: "NodeRuntime", listeners: Sequence[trio.SocketListener], tls_listeners: Sequence[trio.SocketListener] = (),
    tls_context: ssl.SSLContext | None = None,
) -> None:
    """Accept connections until cancelled; each connection is its own task."""
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(accept_forever, listener, partial(_handle, runtime), nursery, "client")
        for listener in tls_listeners:
            nursery.start_soon(accept_forever, listener, partial(_handle_tls, runtime, tls_context), nursery, "TLS")


async def _handle_tls(runtime: "NodeRuntime", context: ssl.SSLContext, stream: trio.SocketStream) -> None:
    """A TLS client: its handshake holds a client slot, as a plain connection does from its accept.

    Otherwise anyone could hold a socket and an SSL object per connection for the handshake timeout,
    without bound, until the node ran out of file descriptors. Past ``clients_max`` there is no TLS
    yet to say why in: the connection is closed at once.
    """
    if runtime.stats.connected >= runtime.config.clients_max:
        await trio.aclose_forcefully(stream)
        return
    runtime.stats.connected += 1
    try:
        tls = await handshake(stream, context, runtime.config.tls_handshake_timeout_ms)
    finally:
        runtime.stats.connected -= 1
    if tls is not None:  # _handle counts it again, with no checkpoint between
        await _handle(runtime, tls)


async def _handle(runtime: "NodeRuntime", stream: trio.SocketStream | trio.SSLStream) -> None:
    async with stream:
        client_id = runtime.next_client_id()
        if runtime.stats.connected >= runtime.config.clients_max:
            await _refuse(stream, errors.MAX_CLIENTS)
            return
        try:
            host, port = socket_of(stream).getpeername()[:2]
        except OSError:
            return
        cfg = runtime.config
        if (denied := protected_refusal(runtime.node.users, cfg.protected_mode, cfg.bind, host)) is not None:
            await _refuse(stream, denied)
            return
        runtime.stats.connected += 1
        try:
            await Connection(runtime, stream, client_id, f"{host}:{port}").serve()
        except AssertionError:
            raise  # a broken invariant takes the whole node down (DESIGN §2)
        except WalFailed:
            pass  # the WAL writer died and takes the node down, saying why once; no reply goes out
        except Exception:
            # A bug in one connection's handling must not take the node down,
            # but it must be loud: log it and close only this connection.
            log.exception("connection %s:%s failed; closing it", host, port)
        finally:
            runtime.stats.connected -= 1


async def _refuse(stream: trio.abc.Stream, message: str) -> None:
    with contextlib.suppress(trio.BrokenResourceError):
        await stream.send_all(b"-" + message.encode() + b"\r\n")
