"""Over TLS, one read gathers every record already arrived: a broker sends one record per
MQTT packet, and a burst must not cost one pass of the event loop per packet."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from runtime.mqtt_client import RECV_SIZE, BufferedSocket
from tests.pki_helpers import TestCa

RECORDS = 200


def tls_pair(tmp_path: Path) -> tuple[ssl.SSLSocket, ssl.SSLSocket]:
    ca = TestCa(tmp_path / "ca")
    cert, key, _ = ca.issue("server", server_ip="127.0.0.1")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(ca.ca_file))
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[ssl.SSLSocket] = []

    def accept() -> None:
        raw, _ = listener.accept()
        accepted.append(server_ctx.wrap_socket(raw, server_side=True))

    thread = threading.Thread(target=accept)
    thread.start()
    client = client_ctx.wrap_socket(
        socket.create_connection(listener.getsockname()), server_hostname="127.0.0.1"
    )
    thread.join()
    listener.close()
    return accepted[0], client


def test_a_burst_of_records_is_read_in_one_go_and_the_end_comes_after_it(
    tmp_path: Path,
) -> None:
    server, client = tls_pair(tmp_path)
    try:
        for n in range(RECORDS):
            server.sendall(f"{n:04d}".encode())  # one TLS record each
        server.close()
        # Wait until everything is in the client's kernel buffer, then read non-blocking.
        client.setblocking(True)
        first = client.recv(4)
        client.setblocking(False)
        buffered = BufferedSocket(client)
        got = bytearray(first)
        got += buffered.recv(RECV_SIZE)
        assert bytes(got) == b"".join(f"{n:04d}".encode() for n in range(RECORDS))
        assert buffered.recv(1) == b""  # the close, once what came before it was read
    finally:
        client.close()
