"""Publishing the body-cam over WHIP (RFC 9725): encoded frames sent as they are.

The agent only dials out: it POSTs its SDP offer to the center with a bearer token, gets
201 + answer + Location, and DELETEs the Location to stop. aiortc has no ICE restart, so a
session ends, and a new PeerConnection is signalled, when:
- the connection fails or closes (after a long cut aiortc says "closed" only after ~30 s);
- the media watchdog expires: no RTCP from the relay for `watchdog_s`, or reports that no
  longer acknowledge what we send (agent/media_watchdog.py);
- the agent asks (`rebuild`: a network change, an MQTT reconnect).
A session that had been healthy is rebuilt at once; failures back off with jitter, and so do
sessions the watchdog ends again and again within seconds (a path that keeps dying is not
hammered). 401/403 stop the publisher until `update_token`; 404 (the center does not know
the stream, perhaps after a restart) is retried, as the center re-creates it.

The relay's receiver reports and REMB feed the uplink estimate and the degrade ladder
(agent/uplink.py, agent/ladder.py), applied to the camera through the MediaPlan.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import structlog
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from agent.aiortc_hooks import (
    RtcpFeedback,
    keyframes_from,
    media_sockets,
    send_backlog,
    tap_rtcp,
    tap_sender_reports,
)
from agent.ladder import DegradeLadder, LadderConfig, Setting
from agent.media_feed import EncodedVideoTrack, MediaPlan
from agent.media_watchdog import REBUILD, MediaWatchdog, Outcome, SessionEnds
from agent.uplink import RoundTrip, UplinkEstimator, UplinkReport
from firmware_bridge.media import EncodedFrame, RateControl, VideoSource
from runtime.backoff import Backoff, Retry
from runtime.dscp import DSCP_AF21, set_dscp
from runtime.webrtc import prefer_codec

log = structlog.get_logger("rtcc.agent.publisher")
WATCH_TICK_S = 0.25
DELETE_TIMEOUT_S = 3.0
# While a unit should be streaming it retries often: video must be back within seconds of
# coverage returning (a dead center refuses connections cheaply). A short connect timeout
# keeps one attempt from hanging on a link that is still gone.
SIGNAL_RETRY = Backoff(initial_s=0.25, max_s=2.0)
SIGNAL_TIMEOUT = httpx.Timeout(10.0, connect=2.0)


class PublishRefused(Exception):
    """The center refused the token (401/403): no retry until a new one comes."""


@dataclass(frozen=True, slots=True)
class PublishOptions:
    watchdog_s: float = 3.0
    adapt: bool = True
    min_bitrate: int = 64_000
    media_dscp: int = DSCP_AF21
    ladder: LadderConfig = field(default_factory=LadderConfig)


class _Session:
    """One PeerConnection's watch: why it ends, and what the relay said of it."""

    def __init__(self, options: PublishOptions) -> None:
        self.watchdog = MediaWatchdog(options.watchdog_s)
        self.estimator = UplinkEstimator()
        self.round_trip = RoundTrip()
        self.ended = asyncio.Event()
        self.reason = ""
        self.connected_at: float | None = None
        self.last_sequence: int | None = None

    def lived(self, now: float) -> float | None:
        return None if self.connected_at is None else now - self.connected_at

    def end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.reason = reason
            self.ended.set()


class WhipPublisher:
    def __init__(
        self,
        whip_url: str,
        token: str,
        source: VideoSource,
        configuration: RTCConfiguration,
        backoff: Backoff = SIGNAL_RETRY,
        rand: Callable[[], float] = random.random,
        *,
        rate: RateControl | None = None,
        substream: VideoSource | None = None,
        options: PublishOptions = PublishOptions(),
        stream_id: str | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.whip_url = whip_url
        self._verify = verify
        self._token = token
        self._configuration = configuration
        self._retry = Retry(backoff, rand=rand)
        self._options = options
        if rate is None and isinstance(source, RateControl):
            rate = source
        self.plan = MediaPlan(source, rate, substream)
        self.ladder = DegradeLadder(
            self.plan.levels, self.plan.nominal_bps, options.min_bitrate, options.ladder
        )
        self.sessions = 0
        self.rebuilds = 0
        self.last_end: str | None = None
        self.connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._session: _Session | None = None
        self._ends = SessionEnds()
        self._report = UplinkReport()
        self._deletes: set[asyncio.Task[None]] = set()
        stream_id = stream_id or whip_url.rstrip("/").rsplit("/", 1)[-1]
        self._log = log.bind(stream_id=stream_id, url=whip_url)

    @property
    def uplink(self) -> UplinkReport:
        return self._report

    def rebuild(self, reason: str, new_network: bool = False) -> None:
        """Drop the current PeerConnection now and signal a new one at once. What the ladder
        learnt of the link is kept unless the network is new: a session rebuilt on the same
        thin link must not climb past what it just saw it carry."""
        self._log.info("whip_rebuild_requested", reason=reason)
        if new_network:
            self.ladder.forget()
        self._wake.set()
        if self._session is not None:
            self._session.end(f"{REBUILD}: {reason}")

    def update_token(self, token: str) -> None:
        """Use `token` from the next signalling on; a publisher waiting to retry tries now."""
        self._token = token
        self._wake.set()

    async def run(self) -> None:
        """Publish until cancelled; raises PublishRefused when the center refuses the token."""
        self._retry.reset()
        try:
            async with httpx.AsyncClient(timeout=SIGNAL_TIMEOUT, verify=self._verify) as http:
                try:
                    while True:
                        try:
                            outcome = await self._run_session(http)
                        except (httpx.HTTPError, OSError) as exc:
                            self._log.warning("whip_signalling_failed", error=str(exc))
                            outcome = "failed"
                        if outcome == "rebuild":
                            self.rebuilds += 1
                            self._retry.reset()
                            continue
                        if outcome == "lasted":
                            self._retry.reset()
                        else:
                            self._retry.failed()
                        await self._pause(self._retry.delay())
                finally:
                    # Tell the center the last session is over (each try is bounded).
                    await asyncio.gather(*self._deletes, return_exceptions=True)
        finally:
            # The camera may also feed evidence: leave it at its nominal rate.
            self.plan.apply(Setting())

    async def _pause(self, delay: float) -> None:
        """Back off, unless a rebuild or a new token came since the last session began."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _run_session(self, http: httpx.AsyncClient) -> Outcome:
        """One PeerConnection's life."""
        self._wake.clear()
        session = self._session = _Session(self._options)
        self._report = UplinkReport(level=self.plan.setting.level)
        pc = RTCPeerConnection(self._configuration)
        track = self._attach(pc, session)
        location = None
        try:
            location = await self._signal(http, pc)
            if location is None:
                return "failed"
            self.sessions += 1
            self._log.info("whip_session_started", session=self.sessions)
            await self._watch(session)
            self.last_end = session.reason
            self._log.warning("whip_session_ended", reason=session.reason, state=pc.connectionState)
            lived = session.lived(asyncio.get_running_loop().time())
            return self._ends.outcome(session.reason, lived, session.watchdog.heard)
        finally:
            self._session = None
            self.connected.clear()
            self._report = UplinkReport(level=self.plan.setting.level)
            track.stop()
            await pc.close()
            if location is not None:
                self._delete_later(http, location)

    def _attach(self, pc: RTCPeerConnection, session: _Session) -> EncodedVideoTrack:
        """The camera's track on `pc`, with the relay's RTCP and the connection state wired
        to `session`."""
        loop = asyncio.get_running_loop()

        def sent(frame: EncodedFrame) -> None:
            now = loop.time()
            session.watchdog.sent(now)
            session.estimator.sent(now, len(frame.data))

        track = EncodedVideoTrack(self.plan, sent)
        self.plan.source.request_keyframe()
        transceiver = pc.addTransceiver(track, direction="sendonly")
        prefer_codec(transceiver, self.plan.source.codec)
        sender = transceiver.sender
        keyframes_from(sender, lambda: self.plan.keyframe_wanted(loop.time()))
        tap_rtcp(sender, lambda feedback: self._feedback(session, feedback))
        tap_sender_reports(sender, lambda lsr: session.round_trip.sender_report(lsr, loop.time()))
        track.backlog = lambda: send_backlog(sender)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                session.connected_at = loop.time()
                self.connected.set()
            elif pc.connectionState in ("failed", "closed"):
                session.end(pc.connectionState)

        return track

    async def _signal(self, http: httpx.AsyncClient, pc: RTCPeerConnection) -> str | None:
        """WHIP offer/answer; the session's Location, or None if the center said no."""
        await pc.setLocalDescription(await pc.createOffer())
        for transceiver in pc.getTransceivers():
            for sock in media_sockets(transceiver.sender):
                set_dscp(sock, self._options.media_dscp)
        response = await http.post(
            self.whip_url,
            content=pc.localDescription.sdp,
            headers={
                "Content-Type": "application/sdp",
                "Authorization": f"Bearer {self._token}",
            },
        )
        if response.status_code in (401, 403):
            raise PublishRefused(f"{response.status_code}: {response.text[:200]}")
        if response.status_code != 201:
            event = "whip_stream_unknown" if response.status_code == 404 else "whip_rejected"
            self._log.warning(event, status=response.status_code)
            return None
        location = str(httpx.URL(self.whip_url).join(response.headers["Location"]))
        await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
        return location

    async def _watch(self, session: _Session) -> None:
        """Until the session ends: its state, a rebuild, or the media watchdog."""
        loop = asyncio.get_running_loop()
        while not session.ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.ended.wait(), WATCH_TICK_S)
            if self.connected.is_set():
                expiry = session.watchdog.expired(loop.time())
                if expiry is not None:
                    session.end(expiry)

    def _delete_later(self, http: httpx.AsyncClient, location: str) -> None:
        """End the old session at the center without holding up the new one (the path may
        be the thing that died)."""

        async def delete() -> None:
            with contextlib.suppress(httpx.HTTPError, OSError):
                await http.delete(
                    location,
                    headers={"Authorization": f"Bearer {self._token}"},
                    timeout=DELETE_TIMEOUT_S,
                )

        task = asyncio.get_running_loop().create_task(delete(), name="whip-delete")
        self._deletes.add(task)
        task.add_done_callback(self._deletes.discard)

    def _feedback(self, session: _Session, feedback: RtcpFeedback) -> None:
        if session is not self._session:
            return  # a late packet for a session already over
        now = asyncio.get_running_loop().time()
        session.watchdog.rtcp(now)
        if feedback.remb_bps is not None:
            session.estimator.remb(now, feedback.remb_bps)
        report = feedback.report
        if report is None:
            return
        if report.highest_sequence != session.last_sequence:
            session.last_sequence = report.highest_sequence
            session.watchdog.progress(now)
        rtt = session.round_trip.rtt(report.lsr, report.dlsr, now)
        session.estimator.report(now, report.fraction_lost, report.jitter_s, rtt)
        sample = session.estimator.sample(now)
        if self._options.adapt:
            setting = self.ladder.update(now, sample)
            if setting is not None:
                self.plan.apply(setting)
                self._log.info(
                    "uplink_level",
                    step=setting.level,
                    target_bps=setting.target_bps,
                    reason=self.ladder.reason,
                    estimate_bps=sample.estimate_bps,
                    sent_bps=sample.sent_bps,
                    loss=None if sample.loss is None else round(sample.loss, 3),
                    rtt_s=None if sample.rtt_s is None else round(sample.rtt_s, 3),
                    queueing_s=None if sample.queueing_s is None else round(sample.queueing_s, 3),
                    remb_bps=sample.remb_bps,
                )
        self._report = UplinkReport(
            level=self.plan.setting.level,
            estimate_bps=sample.estimate_bps,
            sent_bps=sample.sent_bps,
            target_bps=self.plan.setting.target_bps,
            loss=sample.loss,
            rtt_s=sample.rtt_s,
            jitter_s=sample.jitter_s,
            remb_bps=sample.remb_bps,
        )
