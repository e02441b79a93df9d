"""A small async RESP client, for one node to ask another a question (CLUSTER MEET)."""

from typing import Any

import trio

from trionode.core.reply import ErrorReply
from trionode.core.resp import NEED_DATA, ReplyParser, encode_command

CALL_TIMEOUT_S = 5.0


class RemoteError(Exception):
    """The remote node answered with an error, or could not be reached in time."""


async def call_once(host: str, port: int, *argv: bytes | str | int) -> Any:
    """Connect, send one command, return its reply, disconnect."""
    try:
        with trio.fail_after(CALL_TIMEOUT_S):
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                await stream.send_all(encode_command(list(argv)))
                parser = ReplyParser()
                while (reply := parser.next_reply()) is NEED_DATA:
                    data = await stream.receive_some(64 * 1024)
                    if not data:
                        raise RemoteError(f"{host}:{port} closed the connection")
                    parser.feed(data)
    except (OSError, trio.TooSlowError, trio.BrokenResourceError) as e:
        raise RemoteError(f"cannot reach {host}:{port}: {e}") from None
    if isinstance(reply, ErrorReply):
        raise RemoteError(str(reply))
    return reply
