"""A stranger process on the same host attacking a session (run by the executor tests).

``python stranger.py impersonate ADDRESS CONSUMER_PID MARKER OUT SECONDS``: for SECONDS,
connects as the local workers ``L0`` and ``L1`` (one without credentials, one with a
wrong PLAIN password), says HELLO as them with a guessed token and the pid of every child of the consumer (as read
under /proc), sends ITEMS whose pickle would create MARKER if unpickled, and junk
messages (one frame, short heads, unknown kinds); writes to OUT how many messages it
received (a plan would be one).

``python stranger.py flood HOST PORT NBYTES MECHANISM``: opens a raw TCP connection, sends
a ZMTP greeting for MECHANISM (``PLAIN``, ``NULL``) and a command announcing NBYTES, then streams NBYTES (or until the
session hangs up); prints how many bytes it sent.
"""

import os
import pickle
import socket
import struct
import sys
import time
from pathlib import Path

import msgpack
import zmq


class Bomb:
    """Creates a file when unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def impersonate(address: str, consumer: int, marker: str, out: str, seconds: float) -> None:
    context = zmq.Context()
    sockets = []
    for identity, password in ((b"L0", None), (b"L1", b"guess")):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, identity)
        sock.setsockopt(zmq.LINGER, 0)
        if password is not None:
            sock.plain_username, sock.plain_password = b"combinators-worker", password
        sock.connect(address)
        sockets.append(sock)
    bomb = msgpack.packb(msgpack.ExtType(7, pickle.dumps(Bomb(marker))))
    junk = [[b"x"], [b"I\x00"], [struct.pack("<cQ", b"Z", 0), b"?"], [struct.pack("<cQ", b"F", 0)]]
    received = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for sock in sockets:
            for pid in [*children(consumer), consumer]:
                messages = [[struct.pack("<cQ", b"H", pid), b"host", sock.getsockopt(zmq.IDENTITY), b"guess"]]
                messages += [[struct.pack("<cQ", b"I", n), bomb] for n in range(4)]
                messages += [[struct.pack("<cQ", b"F", n), pickle.dumps(Bomb(marker)), b"T", b"m", b"t"] for n in range(4)]
                for frames in messages + junk:
                    try:
                        sock.send_multipart(frames, zmq.NOBLOCK)
                    except zmq.Again:
                        pass
            while sock.poll(0):
                sock.recv_multipart()
                received += 1
        time.sleep(0.05)
    Path(out).write_text(str(received))


def flood(host: str, port: int, nbytes: int, mechanism: bytes) -> None:
    conn = socket.create_connection((host, port))
    greeting = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x01" + mechanism.ljust(20, b"\x00") + b"\x00" * 32
    chunk = b"\x00" * (64 << 20)
    sent = 0
    try:
        conn.sendall(greeting + b"\x06" + struct.pack(">Q", nbytes) + b"\x05HELLO")
        while sent < nbytes:
            sent += conn.send(memoryview(chunk)[: min(len(chunk), nbytes - sent)])
    except OSError:
        pass
    print(sent)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "impersonate":
        impersonate(args[0], int(args[1]), args[2], args[3], float(args[4]))
    else:
        flood(args[0], int(args[1]), int(args[2]), args[3].encode())
    os._exit(0)
