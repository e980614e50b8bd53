"""A WHIP publisher or WHEP viewer built on GStreamer's webrtcbin, for interoperability tests.

Runs under Debian's system Python (python3-gst-1.0), not the project's venv:

    /usr/bin/python3 webrtc_peer.py whep URL TOKEN --codec vp8 --frames 30
    /usr/bin/python3 webrtc_peer.py whip URL TOKEN --codec h264 --seconds 20

ICE gathers on 127.0.0.1 only. The viewer prints one JSON line
{"frames": n, "width": w, "height": h} once it has decoded --frames frames (exit 0) or at
--timeout (exit 1). The publisher prints {"published": true} once its session is up and
keeps sending until --seconds have passed or it is terminated, then DELETEs its resource.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import signal
import sys
import urllib.parse
import urllib.request
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

RTP_CAPS = {
    "vp8": "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
    "h264": (
        "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,"
        "packetization-mode=(string)1,profile-level-id=(string)42e01f"
    ),
}
DECODE = {
    "vp8": "rtpvp8depay ! vp8dec",
    "h264": "rtph264depay ! h264parse ! avdec_h264",
}
ENCODE = {
    "vp8": "vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay pt=96",
    "h264": (
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! "
        "video/x-h264,profile=constrained-baseline,level=(string)3.1 ! "
        "rtph264pay pt=102 config-interval=-1 aggregate-mode=zero-latency"
    ),
}


def ice_agent(webrtc: Any) -> Any:
    """webrtcbin's ICE agent. GStreamer 1.22's getter hands out a reference it does not own,
    which PyGObject then drops, freeing the agent under webrtcbin: take one more."""
    agent = webrtc.get_property("ice-agent")
    capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    capsule_pointer.restype = ctypes.c_void_p
    capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    gobject = ctypes.CDLL("libgobject-2.0.so.0")
    gobject.g_object_ref.argtypes = [ctypes.c_void_p]
    gobject.g_object_ref.restype = ctypes.c_void_p
    gobject.g_object_ref(capsule_pointer(agent.__gpointer__, None))
    return agent


class Peer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.loop = GLib.MainLoop()
        self.frames = 0
        self.size: tuple[int, int] = (0, 0)
        self.location = ""
        self.status = 1
        if args.role == "whip":
            self.pipeline = Gst.parse_launch(
                f"videotestsrc is-live=true pattern=ball ! "
                f"video/x-raw,width={args.width},height={args.height},framerate=30/1 ! "
                f"videoconvert ! {ENCODE[args.codec]} ! "
                "webrtcbin name=webrtc bundle-policy=max-bundle"
            )
            self.webrtc = self.pipeline.get_by_name("webrtc")
        else:
            self.pipeline = Gst.Pipeline.new("viewer")
            self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
            self.webrtc.set_property("bundle-policy", "max-bundle")
            self.pipeline.add(self.webrtc)
            self.webrtc.emit(
                "add-transceiver",
                GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
                Gst.Caps.from_string(RTP_CAPS[args.codec]),
            )
            self.webrtc.connect("pad-added", self.on_pad_added)
        ice_agent(self.webrtc).emit("add-local-ip-address", "127.0.0.1")
        self.webrtc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering_state)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_error)

    def run(self) -> int:
        self.pipeline.set_state(Gst.State.PLAYING)
        limit = self.args.seconds if self.args.role == "whip" else self.args.timeout
        GLib.timeout_add_seconds(limit, self.finish, 0 if self.args.role == "whip" else 1)
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, self.finish, 0)
        self.loop.run()
        self.pipeline.set_state(Gst.State.NULL)
        if self.location:
            request = urllib.request.Request(
                self.location, method="DELETE", headers=self.auth_header()
            )
            with contextlib.suppress(OSError):  # the relay times the session out anyway
                urllib.request.urlopen(request, timeout=5).close()
        return self.status

    def finish(self, status: int) -> bool:
        self.status = status
        if self.args.role == "whep":
            print(
                json.dumps({"frames": self.frames, "width": self.size[0], "height": self.size[1]})
            )
        sys.stdout.flush()
        self.loop.quit()
        return False

    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.args.token}"}

    def on_error(self, _bus: Any, message: Any) -> None:
        error, debug = message.parse_error()
        print(f"gstreamer error: {error.message} ({debug})", file=sys.stderr)
        self.finish(2)

    def on_negotiation_needed(self, _element: Any) -> None:
        promise = Gst.Promise.new_with_change_func(self.on_offer_created, None)
        self.webrtc.emit("create-offer", None, promise)

    def on_offer_created(self, promise: Any, _data: Any) -> None:
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        if offer is None:
            print(f"create-offer failed: {reply.to_string()}", file=sys.stderr)
            self.finish(2)
            return
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def on_gathering_state(self, *_args: Any) -> None:
        # WHIP and WHEP want the complete offer in one POST, so wait for gathering to end.
        state = self.webrtc.get_property("ice-gathering-state")
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE and not self.location:
            GLib.idle_add(self.post_offer)

    def post_offer(self) -> bool:
        offer = self.webrtc.get_property("local-description").sdp.as_text()
        request = urllib.request.Request(
            self.args.url,
            data=offer.encode(),
            method="POST",
            headers={"Content-Type": "application/sdp", **self.auth_header()},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer_text = response.read().decode()
                self.location = urllib.parse.urljoin(self.args.url, response.headers["Location"])
        except OSError as exc:
            print(f"POST {self.args.url} failed: {exc}", file=sys.stderr)
            self.finish(3)
            return False
        _result, sdp = GstSdp.SDPMessage.new_from_text(answer_text)
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        self.webrtc.emit("set-remote-description", answer, Gst.Promise.new())
        if self.args.role == "whip":
            print(json.dumps({"published": True}))
            sys.stdout.flush()
        return False

    def on_pad_added(self, _element: Any, pad: Any) -> None:
        if pad.direction != Gst.PadDirection.SRC:
            return
        decode = Gst.parse_bin_from_description(
            f"{DECODE[self.args.codec]} ! videoconvert ! "
            "fakesink name=sink signal-handoffs=true sync=false",
            True,
        )
        self.pipeline.add(decode)
        decode.sync_state_with_parent()
        pad.link(decode.get_static_pad("sink"))
        decode.get_by_name("sink").connect("handoff", self.on_frame)

    def on_frame(self, _sink: Any, _buffer: Any, pad: Any) -> None:
        structure = pad.get_current_caps().get_structure(0)
        self.size = (structure.get_value("width"), structure.get_value("height"))
        self.frames += 1
        if self.frames == self.args.frames:
            GLib.idle_add(self.finish, 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["whip", "whep"])
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--codec", choices=sorted(RTP_CAPS), default="vp8")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--timeout", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    Gst.init(None)
    return Peer(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
