"""The fault lab: a vehicle, its radio link and the center in network namespaces, with
faults on the link changed while a test runs (tests/lab/lab.py has the picture).

A chaos scenario under tests/chaos gets `fault_lab` and `chaos_report` from its conftest:

    pytestmark = pytest.mark.chaos

    def test_video_survives_a_handover(fault_lab: FaultLab, chaos_report: ChaosReport) -> None:
        relay = fault_lab.spawn_python("core", "-m", "rtcc", "relay-worker", env={...})
        agent = fault_lab.spawn_python("vehicle", "-m", "rtcc", "agent", env={...})
        fault_lab.set_faults(Faults(delay_ms=400, jitter_ms=100, rate_kbit=150), "uplink")
        cut = fault_lab.cut()              # cut.now: when, on time.monotonic()
        fault_lab.restore()
        fault_lab.handover("10.200.0.3")   # the vehicle's new address
        chaos_report.record("handover", "video back after", 1.9, "s", limit=5.0)

`fault_lab.call(where, fn, *args)` runs `fn` inside a namespace in this process (sockets,
or helpers that start processes such as MosquittoProcess.start); `MqttWatch` stamps MQTT
messages as the center receives them.
"""
