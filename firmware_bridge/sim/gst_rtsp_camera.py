"""The simulated body-cam's video as a real camera dock would offer it: an RTSP server
(GStreamer's gst-rtsp-server) with an H.264 test pattern. A script for Debian's system Python
(python3-gst-1.0), not part of the rtcc package's imports; `rtcc bodycam-sim --rtsp-port`
runs it:

    /usr/bin/python3 gst_rtsp_camera.py PORT [WIDTH HEIGHT]

Serves rtsp://127.0.0.1:PORT/cam (default 320x240, 30 fps, a keyframe every second, and a
440 Hz tone in AAC, as a body-cam's microphone) and prints {"ready": true} once listening;
runs until terminated.
"""

from __future__ import annotations

import json
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = (
    "( videotestsrc is-live=true pattern=ball ! "
    "video/x-raw,width={width},height={height},framerate=30/1 ! "
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! "
    "video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 "
    "audiotestsrc is-live=true wave=sine freq=440 volume=0.2 ! audio/x-raw,rate=48000 ! "
    "avenc_aac ! rtpmp4gpay name=pay1 pt=97 )"
)


def main() -> int:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(sys.argv[1])
    factory = GstRtspServer.RTSPMediaFactory()
    width, height = (sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else ("320", "240")
    factory.set_launch(PIPELINE.format(width=int(width), height=int(height)))
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(json.dumps({"ready": False}), flush=True)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print(json.dumps({"ready": True}), flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
