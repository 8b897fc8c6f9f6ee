"""A tiny TCP peer for the proxy benchmark: `python -m bench._netpeer PORT`. One thread per connection; the first
byte picks the mode: E echo 64-byte messages, S sink (read to EOF, answer the byte count), U upload (read an 8-byte
length, read that many bytes, answer the byte count: no half-close, which Toxiproxy does not pass on), D download
(read an 8-byte length, send that many bytes, close). Standard library only; listens on 127.0.0.1 only.
"""
from __future__ import annotations

import socket
import struct
import sys
import threading

MSG = 64
CHUNK = 1 << 16
PAYLOAD = b"\0" * CHUNK


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = conn.recv(n - len(buf))
        if not part:
            return buf
        buf += part
    return buf


def handle(conn: socket.socket) -> None:
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode = conn.recv(1)
        if mode == b"E":
            while True:
                msg = _recv_exact(conn, MSG)
                if len(msg) < MSG:
                    return
                conn.sendall(msg)
        elif mode == b"S":
            total = 0
            while True:
                part = conn.recv(CHUNK)
                if not part:
                    break
                total += len(part)
            conn.sendall(struct.pack("!Q", total))
        elif mode == b"U":
            (size,) = struct.unpack("!Q", _recv_exact(conn, 8))
            total = 0
            while total < size:
                part = conn.recv(min(CHUNK, size - total))
                if not part:
                    break
                total += len(part)
            conn.sendall(struct.pack("!Q", total))
        elif mode == b"D":
            (size,) = struct.unpack("!Q", _recv_exact(conn, 8))
            view = memoryview(PAYLOAD)
            while size > 0:
                n = min(size, CHUNK)
                conn.sendall(view[:n])
                size -= n


def main() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(sys.argv[1])))
    server.listen(128)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
