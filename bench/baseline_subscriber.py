"""Baseline: a bare paho subscriber that only parses `ts` and records latency (the broker
floor with no validation, no registry). Prints a JSON summary on SIGTERM; records from
SIGUSR1 on. Arguments: host port [ca_file cert_file key_file] (the last three: mutual TLS
with a client certificate)."""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def main() -> None:
    host, port, *tls = sys.argv[1:]
    latencies: list[float] = []
    recording = [False]

    def on_message(_c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        ts = json.loads(msg.payload)["ts"]
        if recording[0]:
            latencies.append(time.time() - ts)

    def stop(*_: Any) -> None:
        client.disconnect()

    def start(*_: Any) -> None:
        recording[0] = True

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"baseline-{time.time()}")
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe("rtcc/v1/units/+/state", qos=1)
    if tls:
        ca_file, cert_file, key_file = tls
        client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file)
    client.connect(host, int(port))
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, start)
    client.loop_forever()
    print(json.dumps({"latencies": latencies}))


if __name__ == "__main__":
    main()
