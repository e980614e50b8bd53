"""Simulated hardware for demos, tests and benchmarks: a body-cam speaking the link and the
server `rtcc bodycam-sim` runs it in, a patrol unit's status and events, and a camera
encoding a time-stamped test pattern (in process, or over RTSP as a camera dock would)."""
