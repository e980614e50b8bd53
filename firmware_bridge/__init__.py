"""Body-cam and vehicle hardware as the agent sees it: the body-cam link (link/, a sans-IO
core with serial and TCP transports), encoded video from files, RTSP and V4L2 cameras,
normalized status and events, and simulators of all of these (sim/). It talks to devices
only, never to MQTT or the center, and depends on nothing else of ours."""

from firmware_bridge.device import DeviceEvent, DeviceStatus, GpsFix, StatusSource

__all__ = ["DeviceEvent", "DeviceStatus", "GpsFix", "StatusSource"]
