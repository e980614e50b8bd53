"""The broker's access rules as data: what each identity's ACLs allow, the plugin's first
configuration, control messages and the listener's configuration lines."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from central.broker import MosquittoOptions
from central.broker_security import (
    ADMIN_ROLE,
    CENTER_ROLE,
    CONTROL_TOPIC,
    MONITOR_ROLE,
    RESPONSE_TOPIC,
    BrokerTls,
    CenterIdentities,
    add_unit_commands,
    admin_acls,
    center_acls,
    control_answers,
    control_errors,
    control_payload,
    crl_problem,
    dynsec_config,
    dynsec_config_text,
    dynsec_with_center,
    monitor_acls,
    remove_unit_commands,
    sync_commands,
    unit_acls,
    unit_role,
)
from central.config import BrokerSettings
from protocol.errors import ProtocolError
from protocol.topics import Topic, TopicKind, unit_filter
from tests.pki_helpers import DAY, TestCa

CENTER = CenterIdentities("rtcc.center.center-1", "rtcc.center.center-1.admin", "center-1")
NOC = "rtcc.monitor.noc"
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True)


def allows(acls: list[dict[str, Any]], acltype: str, topic: str) -> bool:
    """As dynsec decides for a concrete topic (for subscriptions: the filter itself)."""
    for acl in acls:
        if acl["acltype"] != acltype:
            continue
        matches = topic == acl["topic"] if acltype == "subscribePattern" else None
        if matches or (matches is None and topic_matches_sub(acl["topic"], topic)):
            return bool(acl["allow"])
    return False


def reports(unit_id: str) -> list[str]:
    return [
        str(Topic.presence(unit_id)),
        str(Topic.state(unit_id)),
        str(Topic.event(unit_id, "holster_draw")),
        str(Topic.result(unit_id)),
    ]


@given(ids, ids)
def test_a_unit_writes_its_reports_and_reads_its_commands_only(own: str, other: str) -> None:
    acls = unit_acls(own)
    assert all(allows(acls, "publishClientSend", topic) for topic in reports(own))
    assert not allows(acls, "publishClientSend", str(Topic.command(own, "config.set")))
    own_commands = unit_filter(TopicKind.COMMAND, own)
    assert allows(acls, "subscribePattern", own_commands)
    assert allows(acls, "publishClientReceive", str(Topic.command(own, "config.set")))
    assert not allows(acls, "publishClientReceive", str(Topic.state(own)))
    for pattern in ("#", "rtcc/#", unit_filter(TopicKind.COMMAND), f"rtcc/v1/units/{own}/#"):
        assert not allows(acls, "subscribePattern", pattern)
    if other != own:
        assert not any(allows(acls, "publishClientSend", topic) for topic in reports(other))
        assert not allows(acls, "subscribePattern", unit_filter(TopicKind.COMMAND, other))
        assert not allows(acls, "publishClientReceive", str(Topic.command(other, "config.set")))


def test_the_center_reads_reports_and_commands_units_and_its_admin_only_the_plugin() -> None:
    acls = center_acls("center-1")
    for kind in (TopicKind.PRESENCE, TopicKind.STATE, TopicKind.EVENT, TopicKind.RESULT):
        assert allows(acls, "subscribePattern", unit_filter(kind))
    assert all(allows(acls, "publishClientReceive", topic) for topic in reports("P-117"))
    assert allows(acls, "publishClientSend", str(Topic.command("P-117", "config.set")))
    assert allows(acls, "publishClientSend", str(Topic.center_status("center-1")))
    assert allows(acls, "publishClientSend", str(Topic.center_event("center-1", "alert.new")))
    assert not allows(acls, "publishClientSend", str(Topic.center_status("center-2")))
    assert not any(allows(acls, "publishClientSend", topic) for topic in reports("P-117"))
    assert not allows(acls, "publishClientSend", "$CONTROL/dynamic-security/v1")
    admin = admin_acls()
    assert allows(admin, "publishClientSend", "$CONTROL/dynamic-security/v1")
    assert allows(admin, "subscribePattern", RESPONSE_TOPIC)
    assert not allows(admin, "subscribePattern", unit_filter(TopicKind.STATE))
    assert not allows(admin, "publishClientSend", str(Topic.command("P-117", "config.set")))


@given(ids)
def test_a_monitor_reads_every_units_reports_and_does_nothing_else(unit: str) -> None:
    acls = monitor_acls()
    for kind in (TopicKind.PRESENCE, TopicKind.STATE, TopicKind.EVENT, TopicKind.RESULT):
        assert allows(acls, "subscribePattern", unit_filter(kind))
    assert all(allows(acls, "publishClientReceive", topic) for topic in reports(unit))
    assert {acl["acltype"] for acl in acls} == {"subscribePattern", "publishClientReceive"}
    command = str(Topic.command(unit, "config.set"))
    assert not allows(acls, "publishClientReceive", command)
    assert not allows(acls, "publishClientReceive", str(Topic.center_status("center-1")))
    for pattern in ("#", "rtcc/#", unit_filter(TopicKind.COMMAND), RESPONSE_TOPIC):
        assert not allows(acls, "subscribePattern", pattern)
    assert not allows(acls, "publishClientReceive", RESPONSE_TOPIC)
    sends = [command, CONTROL_TOPIC, str(Topic.center_status("center-1")), *reports(unit)]
    assert not any(allows(acls, "publishClientSend", topic) for topic in sends)


def test_monitors_are_clients_with_the_monitor_role_and_clash_with_nobody() -> None:
    center = CenterIdentities(CENTER.fleet, CENTER.admin, CENTER.center_id, (NOC,))
    config = dynsec_config(center, ["unit-a"])
    clients = {c["username"]: [r["rolename"] for r in c["roles"]] for c in config["clients"]}
    assert clients[NOC] == [MONITOR_ROLE]
    assert len(clients) == 4
    roles = {r["rolename"]: r["acls"] for r in config["roles"]}
    assert roles[MONITOR_ROLE] == monitor_acls()
    for clash in ((CENTER.fleet,), (CENTER.admin,), (NOC, NOC)):
        with pytest.raises(ValueError, match="monitor identity must differ"):
            CenterIdentities(CENTER.fleet, CENTER.admin, CENTER.center_id, clash)
    for bad in ("noc", "a/b.c", "rtcc.monitor." + "x" * 128):
        with pytest.raises(ValueError, match="identity"):
            CenterIdentities(CENTER.fleet, CENTER.admin, CENTER.center_id, (bad,))


def test_monitor_names_are_ids_each_named_once() -> None:
    assert BrokerSettings(monitors=["noc", "lab-2"]).monitors == ["noc", "lab-2"]
    for bad in (["a.b"], ["a/b"], [""], ["noc", "noc"]):
        with pytest.raises(ValueError, match=r"not a valid|twice"):
            BrokerSettings(monitors=bad)


def test_the_first_configuration_denies_by_default_and_names_each_identity() -> None:
    config = dynsec_config(CENTER, ["unit-b", "unit-a", "unit-a"])
    assert not any(
        config["defaultACLAccess"][k]
        for k in ("publishClientSend", "publishClientReceive", "subscribe")
    )
    clients = {c["username"]: [r["rolename"] for r in c["roles"]] for c in config["clients"]}
    assert clients == {
        "rtcc.center.center-1": [CENTER_ROLE],
        "rtcc.center.center-1.admin": [ADMIN_ROLE],
        "unit-a": [unit_role("unit-a")],
        "unit-b": [unit_role("unit-b")],
    }
    assert all("password" not in c for c in config["clients"])
    roles = {r["rolename"]: r["acls"] for r in config["roles"]}
    assert roles[unit_role("unit-a")] == unit_acls("unit-a")
    assert roles[CENTER_ROLE] == center_acls("center-1")
    assert roles[ADMIN_ROLE] == admin_acls()
    with pytest.raises(ProtocolError):
        dynsec_config(CENTER, ["rtcc.center.center-1"])


def test_a_kept_plugin_file_keeps_its_units_with_the_rights_of_this_version() -> None:
    kept = json.loads(dynsec_config_text(CENTER, ["unit-a"]))
    kept["clients"].append({"username": "rtcc.center.old", "roles": [{"rolename": "x"}]})
    kept["roles"][0]["acls"] = []  # the center's rights as an older version had them
    unit_rights = next(r for r in kept["roles"] if r["rolename"] == unit_role("unit-a"))
    unit_rights["acls"] = unit_rights["acls"][:1]  # a unit's, likewise
    kept["clients"].append({"username": "a/b", "roles": []})  # not a unit id: dropped
    kept["roles"].append({"rolename": unit_role("unit-a") + "x", "acls": []})  # nobody's
    moved = CenterIdentities("rtcc.center.c2", "rtcc.center.c2.admin", "c2")
    config = json.loads(dynsec_with_center(json.dumps(kept), moved))
    assert sorted(c["username"] for c in config["clients"]) == [
        "rtcc.center.c2",
        "rtcc.center.c2.admin",
        "unit-a",
    ]
    roles = {r["rolename"]: r["acls"] for r in config["roles"]}
    assert roles == {
        CENTER_ROLE: center_acls("c2"),
        ADMIN_ROLE: admin_acls(),
        MONITOR_ROLE: monitor_acls(),
        unit_role("unit-a"): unit_acls("unit-a"),
    }
    assert not any(config["defaultACLAccess"][k] for k in ("publishClientSend", "subscribe"))
    for bad in ("[]", "{", "null"):
        with pytest.raises(ValueError):
            dynsec_with_center(bad, moved)


def test_a_kept_plugin_file_gets_exactly_the_monitors_configured_now() -> None:
    before = CenterIdentities(
        CENTER.fleet, CENTER.admin, CENTER.center_id, (NOC, "rtcc.monitor.old")
    )
    kept = json.loads(dynsec_config_text(before, ["unit-a"]))
    role = next(r for r in kept["roles"] if r["rolename"] == MONITOR_ROLE)
    role["acls"].append({"acltype": "publishClientSend", "topic": "#", "allow": True})
    now = CenterIdentities(CENTER.fleet, CENTER.admin, CENTER.center_id, ("rtcc.monitor.lab", NOC))
    config = json.loads(dynsec_with_center(json.dumps(kept), now))
    clients = {c["username"]: [r["rolename"] for r in c["roles"]] for c in config["clients"]}
    assert clients == {
        CENTER.fleet: [CENTER_ROLE],
        CENTER.admin: [ADMIN_ROLE],
        "rtcc.monitor.lab": [MONITOR_ROLE],
        NOC: [MONITOR_ROLE],
        "unit-a": [unit_role("unit-a")],
    }
    roles = {r["rolename"]: r["acls"] for r in config["roles"]}
    assert roles[MONITOR_ROLE] == monitor_acls()
    # None configured any more: the kept monitors go, the units stay.
    alone = json.loads(dynsec_with_center(json.dumps(config), CENTER))
    assert sorted(c["username"] for c in alone["clients"]) == sorted(
        [CENTER.fleet, CENTER.admin, "unit-a"]
    )


def test_ids_that_are_not_unit_ids_are_refused() -> None:
    for bad in ("+", "#", "a/b", "", "x" * 65):
        with pytest.raises(ProtocolError):
            unit_acls(bad)
        with pytest.raises(ProtocolError):
            remove_unit_commands(bad)


def test_control_messages_and_their_answers() -> None:
    payload = json.loads(control_payload(add_unit_commands("P-117"), "abc"))
    assert [c["command"] for c in payload["commands"]] == ["createRole", "createClient"]
    assert [c["correlationData"] for c in payload["commands"]] == ["abc-0", "abc-1"]
    assert [c["command"] for c in remove_unit_commands("P-117")] == ["deleteClient", "deleteRole"]

    def answer(*responses: dict[str, str]) -> bytes:
        return json.dumps({"responses": list(responses)}).encode()

    ok = answer({"command": "deleteClient", "correlationData": "abc-0"})
    assert control_answers(ok, "other") is None
    assert control_errors(control_answers(ok, "abc") or []) == []
    again = answer(
        {"command": "deleteClient", "error": "Client not found", "correlationData": "abc-0"},
        {"command": "createRole", "error": "Role already exists", "correlationData": "abc-1"},
    )
    assert control_errors(control_answers(again, "abc") or []) == []
    failed = answer(
        {"command": "createClient", "error": "Internal error", "correlationData": "abc-1"}
    )
    assert control_errors(control_answers(failed, "abc") or []) == ["createClient: Internal error"]


def test_syncing_keeps_the_center_removes_the_revoked_and_adds_the_enrolled() -> None:
    listed = ["rtcc.center.c1", "rtcc.center.c1.admin", "P-1", "P-2"]
    commands = sync_commands(listed, {"P-2", "P-3"})
    assert commands == remove_unit_commands("P-1") + add_unit_commands("P-3")
    assert sync_commands(["rtcc.center.c1", "P-2"], {"P-2"}) == []
    # Names that are not unit ids are never added as units.
    assert sync_commands([], {"rtcc.center.c1", "a/b"}) == []


def test_the_tls_listener_replaces_the_open_one(tmp_path: Path) -> None:
    tls = BrokerTls(
        ca_file=Path("/pki/ca.pem"),
        cert_file=Path("/pki/server.pem"),
        key_file=Path("/pki/server.key"),
        crl_file=Path("/pki/crl.pem"),
        center_identity="rtcc.center.center-1",
        center_id="center-1",
        admin_identity="rtcc.center.center-1.admin",
    )
    lines = MosquittoOptions(tls=tls).render(tmp_path, 8883).splitlines()
    for line in (
        "listener 8883 127.0.0.1",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "crlfile /pki/crl.pem",
        "tls_version tlsv1.2",
        "allow_anonymous false",
        f"plugin_opt_config_file {tmp_path}/dynamic-security.json",
    ):
        assert line in lines
    assert "allow_anonymous true" not in lines
    assert sum(line.startswith("listener ") for line in lines) == 1
    plain = MosquittoOptions().render(tmp_path, 1883).splitlines()
    assert plain[:3] == [
        "per_listener_settings false",
        "listener 1883 127.0.0.1",
        "allow_anonymous true",
    ]
    keys = {line.split()[0] for line in plain}
    assert not keys & {"cafile", "require_certificate", "plugin", "tls_version"}
    files = (tls.ca_file, tls.cert_file, tls.key_file, tls.crl_file)
    for fleet, admin in (("a/b", "a.b"), ("center-1", "a.b"), ("a.b", "a.b"), ("a.", "a.b")):
        with pytest.raises(ValueError, match="identit"):
            BrokerTls(*files, fleet, "center-1", admin)
    with pytest.raises(ProtocolError):
        BrokerTls(*files, "rtcc.center", "c.1", "rtcc.center.admin")


def test_garbage_control_answers_are_not_ours() -> None:
    for payload in (b"", b"{", b"[]", b'{"responses": 3}', b'{"responses": [1, "x"]}'):
        assert control_answers(payload, "abc") is None


def test_a_crl_mosquitto_could_not_use_is_named(tmp_path: Path) -> None:
    ca = TestCa(tmp_path / "ca")
    other = TestCa(tmp_path / "other")
    now = dt.datetime.now(dt.UTC)
    good = ca.write_crl().read_bytes()
    ca_pem = ca.ca_file.read_bytes()
    assert crl_problem(good, ca_pem, now) is None
    assert "expired" in (crl_problem(good, ca_pem, now + 8 * DAY) or "")
    assert "unreadable" in (crl_problem(b"garbage", ca_pem, now) or "")
    assert "not signed" in (crl_problem(good, other.ca_file.read_bytes(), now) or "")
    renamed = TestCa(tmp_path / "renamed", name="another CA")
    assert "not from" in (crl_problem(good, renamed.ca_file.read_bytes(), now) or "")
