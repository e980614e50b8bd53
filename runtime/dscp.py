"""DiffServ marks on the agent's sockets, so that wherever a queue honours them, status
(MQTT) goes before live media.

- MQTT: AF31 (26). RFC 4594 puts signalling and critical data there; Wi-Fi WMM maps it to
  best effort.
- Live media: AF21 (18). Below AF31 in any DiffServ domain, above unmarked bulk (evidence
  uploads); Wi-Fi WMM (Linux maps by the top three bits) puts it in background, under the
  MQTT socket's best effort. AF41, the usual class for interactive video (RFC 8837), would
  land in WMM's video category, ahead of MQTT: the opposite of what a unit needs.
"""

from __future__ import annotations

import socket
from typing import Protocol

DSCP_AF21 = 18
DSCP_AF31 = 26
DSCP_CS3 = 24


class _Socket(Protocol):
    """socket.socket, or asyncio's TransportSocket wrapper of one."""

    @property
    def family(self) -> int: ...

    def setsockopt(self, level: int, optname: int, value: int, /) -> None: ...


def set_dscp(sock: _Socket, dscp: int) -> bool:
    """Mark every packet the socket sends; False where the platform refuses."""
    if not 0 <= dscp <= 63:
        raise ValueError("a DSCP is 0..63")
    tos = dscp << 2
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    except OSError:
        return False
    return True
