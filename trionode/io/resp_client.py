"""A small async RESP client, for one node to ask another a question (CLUSTER MEET)."""

from typing import Any

import trio

from trionode.core.reply import ErrorReply
from trionode.core.resp import NEED_DATA, ReplyParser, encode_command

CALL_TIMEOUT_S = 5.0


class RemoteError(Exception):
    """The remote node answered with an error, or could not be reached in time."""


async def call_once(host: str, port: int, *argv: bytes | str | int, password: str = "") -> Any:
    """Connect, send one command (after AUTH ``password`` if one is given), return its reply, disconnect."""
    commands = [["AUTH", password]] if password else []
    commands.append(list(argv))
    try:
        with trio.fail_after(CALL_TIMEOUT_S):
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                await stream.send_all(b"".join(encode_command(c) for c in commands))
                parser = ReplyParser()
                for _ in commands:
                    reply = await _next_reply(stream, parser, f"{host}:{port}")
                    if isinstance(reply, ErrorReply):
                        raise RemoteError(str(reply))
    except (OSError, trio.TooSlowError, trio.BrokenResourceError) as e:
        raise RemoteError(f"cannot reach {host}:{port}: {e}") from None
    return reply


async def _next_reply(stream: trio.SocketStream, parser: ReplyParser, addr: str) -> Any:
    while (reply := parser.next_reply()) is NEED_DATA:
        data = await stream.receive_some(64 * 1024)
        if not data:
            raise RemoteError(f"{addr} closed the connection")
        parser.feed(data)
    return reply
