import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import AgentSettings
from central.config import CentralSettings
from runtime.backoff import Backoff
from runtime.config import BrokerUrl, ConfigError, load_settings, parse_broker_urls
from tests.helpers import run_rtcc


@given(st.integers(0, 1000), st.floats(0, 1, exclude_max=True))
def test_backoff_stays_within_its_ceiling(attempt: int, r: float) -> None:
    b = Backoff(initial_s=0.5, max_s=20.0)
    assert 0 <= b.delay(attempt, lambda: r) <= min(20.0, 0.5 * 2**attempt)


def test_backoff_is_jittered() -> None:
    import random

    rng = random.Random(1)
    delays = {round(Backoff().delay(5, rng.random), 6) for _ in range(50)}
    assert len(delays) > 40


def test_broker_urls() -> None:
    assert parse_broker_urls("mqtt://a:1, mqtts://b") == [
        BrokerUrl("mqtt", "a", 1),
        BrokerUrl("mqtts", "b", 8883),
    ]
    for bad in ("", "http://a", "mqtt://user:pw@a", "mqtt://a/path", "a:1883"):
        with pytest.raises(ValueError):
            parse_broker_urls(bad)


def test_env_overrides_and_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTCC_UNIT_ID", "unit-7")
    monkeypatch.setenv("RTCC_MQTT_URL", "mqtt://127.0.0.1:1883,mqtt://127.0.0.1:1884")
    monkeypatch.setenv("RTCC_MQTT__KEEPALIVE_S", "12")
    settings = load_settings(AgentSettings)
    assert settings.unit_id == "unit-7" and settings.mqtt.keepalive_s == 12
    assert len(settings.broker_urls()) == 2


def test_bad_value_names_field_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTCC_UNIT_ID", "unit-7")
    monkeypatch.setenv("RTCC_MQTT__KEEPALIVE_S", "forever")
    with pytest.raises(ConfigError, match=r"mqtt\.keepalive_s.*RTCC_MQTT__KEEPALIVE_S"):
        load_settings(AgentSettings)


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('center_id = "c1"\n[http]\nport = 9000\nprot = 1\n')
    with pytest.raises(ConfigError, match=r"http\.prot"):
        load_settings(CentralSettings, cfg)
    cfg.write_text("center_id = \n")
    with pytest.raises(ConfigError, match="config file"):
        load_settings(CentralSettings, cfg)


def test_file_then_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('center_id = "from-file"\n[http]\nport = 9000\n')
    monkeypatch.setenv("RTCC_HTTP__PORT", "9100")
    settings = load_settings(CentralSettings, cfg)
    assert settings.center_id == "from-file" and settings.http.port == 9100


def test_cli_reports_bad_config_and_exits_2() -> None:
    env = {**os.environ, "RTCC_UNIT_ID": "bad/id", "RTCC_MQTT_URL": "mqtt://127.0.0.1:1"}
    proc = run_rtcc("agent", env=env, timeout=30)
    assert proc.returncode == 2
    assert "unit_id" in proc.stderr and "RTCC_UNIT_ID" in proc.stderr
    assert "Traceback" not in proc.stderr
