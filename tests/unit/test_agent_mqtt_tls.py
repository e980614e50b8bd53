"""The agent's configuration refuses a client certificate over plain MQTT and half a key pair:
an enrolled unit speaks mqtts:// only, with its certificate and its key."""

from pathlib import Path

import pytest

from agent.config import AgentSettings
from runtime.config import ConfigError, load_settings


def settings_file(tmp_path: Path, mqtt_url: str, tls: dict[str, str]) -> Path:
    lines = ['unit_id = "P-117"', f'mqtt_url = "{mqtt_url}"', "", "[mqtt.tls]"]
    lines += [f'{key} = "{tmp_path / value}"' for key, value in tls.items()]
    path = tmp_path / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


CERT = {"ca_file": "ca.pem", "cert_file": "unit.pem", "key_file": "unit.key"}


def test_an_enrolled_unit_over_mqtts_is_taken(tmp_path: Path) -> None:
    path = settings_file(tmp_path, "mqtts://broker.example:8883", CERT)
    settings = load_settings(AgentSettings, path)
    assert settings.mqtt.tls.cert_file == tmp_path / "unit.pem"


@pytest.mark.parametrize(
    "url", ["mqtt://broker.example:1883", "mqtts://a.example:8883,mqtt://b.example:1883"]
)
def test_a_client_certificate_over_plain_mqtt_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(AgentSettings, settings_file(tmp_path, url, CERT))
    assert "speaks mqtts:// only" in str(refused.value)
    assert "mqtt://" in str(refused.value)


@pytest.mark.parametrize("missing", ["cert_file", "key_file"])
def test_half_a_key_pair_is_refused(tmp_path: Path, missing: str) -> None:
    tls = {k: v for k, v in CERT.items() if k != missing}
    with pytest.raises(ConfigError, match="both cert_file and key_file"):
        load_settings(AgentSettings, settings_file(tmp_path, "mqtts://broker.example", tls))


def test_plain_mqtt_without_a_certificate_is_still_taken(tmp_path: Path) -> None:
    # Development and the demo's open broker: no client certificate, nothing to protect.
    path = settings_file(tmp_path, "mqtt://127.0.0.1:1883", {})
    assert load_settings(AgentSettings, path).mqtt_url == "mqtt://127.0.0.1:1883"


def test_the_refusal_comes_from_the_environment_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTCC_UNIT_ID", "P-117")
    monkeypatch.setenv("RTCC_MQTT_URL", "mqtt://127.0.0.1:1883")
    monkeypatch.setenv("RTCC_MQTT__TLS__CERT_FILE", str(tmp_path / "unit.pem"))
    monkeypatch.setenv("RTCC_MQTT__TLS__KEY_FILE", str(tmp_path / "unit.key"))
    with pytest.raises(ConfigError, match="speaks mqtts:// only"):
        load_settings(AgentSettings)
