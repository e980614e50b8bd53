"""What the relay reads in and changes on an SDP (pure text, no peer connection)."""

from __future__ import annotations

import re

from runtime.webrtc import VIDEO_MIME


def loopback_candidates_only(sdp: str) -> str:
    """Drop a peer's candidates that are not on loopback. A relay that offers only loopback
    addresses cannot reach them anyway, and must not send connectivity checks off the
    machine (the browser is then found as a peer-reflexive loopback candidate)."""
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            address = parts[4] if len(parts) > 4 else ""
            if not (address.startswith("127.") or address == "::1"):
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


def answer_codec(sdp: str) -> str | None:
    """The codec an SDP answer picked for video: the first payload type of its m=video."""
    match = re.search(r"^m=video \d+ \S+ (\d+)", sdp, re.MULTILINE)
    if match is None:
        return None
    rtpmap = re.search(rf"^a=rtpmap:{match.group(1)} ([A-Za-z0-9]+)/", sdp, re.MULTILINE)
    name = rtpmap.group(1).lower() if rtpmap else ""
    return name if name in VIDEO_MIME else None
