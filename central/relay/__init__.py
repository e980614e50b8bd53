"""The WebRTC relay: WHIP in, WHEP out, encoded frames forwarded without transcoding."""
