"""Bytes between the server and its workers.

The worker builds the whole response head itself (``http.reply``), so the
server's hot path is parse, forward, copy back: the CPU work of encoding
stays on the worker's core. Frames are a 4-byte length and a ``marshal`` payload: both ends run the
same interpreter, and marshal is the cheapest codec for tuples of str, bytes
and numbers.
"""

from __future__ import annotations

import marshal
import os
import socket
import struct

TYPE_CHECKING = False  # typing itself is not imported on the boot path
if TYPE_CHECKING:
    from typing import Any

_LEN = struct.Struct("!I")
HEADER_LEN = _LEN.size


FORK = b"F"


def frame(obj: Any) -> bytes:
    payload = marshal.dumps(obj)
    return _LEN.pack(len(payload)) + payload


def unpack_len(buf: bytes | bytearray, offset: int = 0) -> int:
    return int(_LEN.unpack_from(buf, offset)[0])


def frame_end(buf: bytes | bytearray) -> int:
    """Where the first whole frame in ``buf`` ends; 0 while it is incomplete.

    ``frame_end(data) == len(data)``: ``data`` is exactly one frame, which
    a reader can take as it is, without buffering.
    """
    if len(buf) < HEADER_LEN:
        return 0
    end = HEADER_LEN + unpack_len(buf)
    return end if end <= len(buf) else 0


def loads(payload: bytes | bytearray | memoryview) -> Any:
    return marshal.loads(payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def recv_frame(sock: socket.socket) -> Any:
    """Blocking read of one frame; None when the peer has gone."""
    head = _recv_exact(sock, HEADER_LEN)
    if head is None:
        return None
    payload = _recv_exact(sock, unpack_len(head))
    if payload is None:
        return None
    return marshal.loads(payload)


def send_frame(sock: socket.socket, obj: Any) -> None:
    sock.sendall(frame(obj))


def request_worker(ctrl: socket.socket) -> tuple[int, int]:
    """Ask the zygote for one worker; returns (request write fd, reply read fd).

    Two pipes per worker: on Linux a pipe round trip costs about 60 % of a
    Unix socketpair's, and the hop is paid on every call. Raises ``OSError``
    when the zygote is gone.
    """
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    try:
        socket.send_fds(ctrl, [FORK], [req_r, rep_w])
    except OSError:
        os.close(req_w)
        os.close(rep_r)
        raise
    finally:
        os.close(req_r)
        os.close(rep_w)
    return req_w, rep_r
