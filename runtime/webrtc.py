"""WebRTC settings shared by the agent's publisher and the relay: ICE servers and which
host addresses ICE may offer (aioice offers every interface by default)."""

from __future__ import annotations

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer, RTCRtpSender, RTCRtpTransceiver

from runtime.config import IceSettings


def apply_ice(settings: IceSettings) -> RTCConfiguration:
    """Restrict host candidates (process-wide, as aioice decides it in one module function)
    and return the RTCConfiguration for new peer connections."""
    if settings.host_addresses is not None:
        addresses = list(settings.host_addresses)

        def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            return [a for a in addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

        setattr(aioice.ice, "get_host_addresses", host_addresses)  # noqa: B010
    return RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in settings.servers])


VIDEO_MIME = {"h264": "video/H264", "vp8": "video/VP8"}


def prefer_codec(transceiver: RTCRtpTransceiver, codec: str) -> None:
    """Negotiate only `codec` (and its retransmissions) on this transceiver. Call it before
    setting the remote description: aiortc silently ignores it afterwards."""
    mime = VIDEO_MIME[codec]
    transceiver.setCodecPreferences(
        [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType in (mime, "video/rtx")
        ]
    )
