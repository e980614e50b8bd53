"""Body-cam hardware -> normalized status, events and (later) media. No network, no MQTT."""

from firmware_bridge.device import DeviceEvent, DeviceStatus, GpsFix, StatusSource
from firmware_bridge.simulated import SimulatedUnit

__all__ = ["DeviceEvent", "DeviceStatus", "GpsFix", "SimulatedUnit", "StatusSource"]
