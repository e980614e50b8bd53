"""A short MP4 with H.264 video and AAC sound, for the audio paths of sources and recorder."""

from __future__ import annotations

import array
import fractions
import math
from pathlib import Path
from typing import Any

import av

from firmware_bridge.sim.pattern import PatternRenderer

SAMPLE_RATE = 48_000
SAMPLES_PER_FRAME = 1024


def write_clip_with_sound(path: Path, seconds: float, fps: int = 10) -> None:
    renderer = PatternRenderer(192, 96)
    with av.open(str(path), "w") as out:
        video: Any = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 192, 96, "yuv420p"
        video.codec_context.options = {"g": str(fps), "tune": "zerolatency"}
        audio: Any = out.add_stream("aac", rate=SAMPLE_RATE)
        audio.codec_context.layout = "mono"
        audio.codec_context.format = "fltp"
        frames = int(seconds * fps)
        samples = int(seconds * SAMPLE_RATE)
        sent = 0
        for n in range(frames):
            picture = av.VideoFrame(192, 96, "yuv420p")
            for plane, data in zip(picture.planes, renderer.render(n, n * 100), strict=True):
                plane.update(data)
            picture.pts = n
            picture.time_base = fractions.Fraction(1, fps)
            out.mux(video.encode(picture))
            # Sound up to the same time: a 440 Hz tone.
            while sent < min(samples, (n + 1) * SAMPLE_RATE // fps):
                tone = array.array(
                    "f",
                    (
                        0.2 * math.sin(2 * math.pi * 440 * (sent + i) / SAMPLE_RATE)
                        for i in range(SAMPLES_PER_FRAME)
                    ),
                )
                sound = av.AudioFrame(format="fltp", layout="mono", samples=SAMPLES_PER_FRAME)
                sound.planes[0].update(tone.tobytes())
                sound.sample_rate = SAMPLE_RATE
                sound.pts = sent
                sound.time_base = fractions.Fraction(1, SAMPLE_RATE)
                out.mux(audio.encode(sound))
                sent += SAMPLES_PER_FRAME
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
