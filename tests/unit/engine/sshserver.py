"""A minimal in-process SSH server on loopback (real paramiko on both ends) that accepts one client key and
records the command line of every exec request, answering each with exit status 0 and no output. It can be
slow to open a channel, as a host under heavy load is.

`executing_server` is its sibling for tests that need real answers: it takes any number of logins,
counts them, and runs each command with the local sh (stdin, stdout, stderr and exit status as sshd
would carry them)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paramiko


@dataclass
class LoopbackServer:
    port: int
    key_file: Path
    known_hosts: Path
    commands: list[str] = field(default_factory=list)  # what the client asked sshd to run, in order
    logins: int = 0  # connections that completed the SSH handshake (executing_server)


class _AcceptOneKey(paramiko.ServerInterface):
    def __init__(self, key: paramiko.PKey, commands: list[str], open_delay: float) -> None:
        self.key = key
        self.commands = commands
        self.open_delay = open_delay

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL if key == self.key else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        time.sleep(self.open_delay)  # the channel's confirmation waits (this runs on the transport's thread)
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.commands.append(command.decode())
        threading.Thread(target=self.answer, args=(channel, command.decode()), daemon=True).start()
        return True

    def answer(self, channel: paramiko.Channel, command: str) -> None:
        _finish(channel)


class _Executing(_AcceptOneKey):
    def answer(self, channel: paramiko.Channel, command: str) -> None:
        _execute(channel, command)


def _finish(channel: paramiko.Channel) -> None:
    """Read the client's stdin to its end, then exit 0."""
    while channel.recv(65536):
        pass
    channel.send_exit_status(0)
    channel.shutdown_write()
    channel.close()


def _execute(channel: paramiko.Channel, command: str) -> None:
    """Run `command` as sshd would (the user's shell given it with -c), carrying stdin, stdout and stderr."""
    proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin and proc.stdout and proc.stderr

    def feed() -> None:
        try:
            while data := channel.recv(65536):
                proc.stdin.write(data)  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass  # the command stopped reading

    def pump(read, send) -> None:
        while data := read(65536):
            send(data)

    threads = [threading.Thread(target=feed, daemon=True),
               threading.Thread(target=pump, args=(proc.stdout.read1, channel.sendall), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr.read1, channel.sendall_stderr), daemon=True)]
    for thread in threads:
        thread.start()
    threads[1].join()
    threads[2].join()
    channel.send_exit_status(proc.wait())
    channel.shutdown_write()
    channel.close()


@contextmanager
def executing_server(directory: Path) -> Iterator[LoopbackServer]:
    """A server that takes any number of logins (counted in `logins`) and runs what it is asked to."""
    host_key, client_key, listener, server = _keys_and_listener(directory)
    transports: list[paramiko.Transport] = []
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(host_key)
            transports.append(transport)
            try:
                transport.start_server(server=_Executing(client_key, server.commands, 0.0))
            except (paramiko.SSHException, EOFError):
                continue
            server.logins += 1

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stopping.set()
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept(); a close alone leaves the port listening
        listener.close()
        for transport in transports:
            transport.close()


def _keys_and_listener(directory: Path) -> tuple[paramiko.PKey, paramiko.PKey, socket.socket, LoopbackServer]:
    host_key = paramiko.ECDSAKey.generate()
    client_key = paramiko.ECDSAKey.generate()
    key_file = directory / "id_ecdsa"
    client_key.write_private_key_file(str(key_file))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    known_hosts = directory / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.get_name()} {host_key.get_base64()}\n")
    return host_key, client_key, listener, LoopbackServer(port, key_file, known_hosts)


@contextmanager
def loopback_server(directory: Path, *, open_delay: float = 0.0) -> Iterator[LoopbackServer]:
    host_key, client_key, listener, server = _keys_and_listener(directory)
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        conn, _ = listener.accept()
        transport = paramiko.Transport(conn)
        transport.add_server_key(host_key)
        transports.append(transport)
        transport.start_server(server=_AcceptOneKey(client_key, server.commands, open_delay))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        thread.join(5)
        for transport in transports:
            transport.close()
        listener.close()
