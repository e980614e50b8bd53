"""`--install-service` under a temporary root: the unit file placed with ExecStart= at this
rtcc and its agent reading what enrollment wrote, the user made and handed the folder (as
root only), systemd told to enable and (re)start it when it runs; failures named."""

import io
import os
import shutil
from pathlib import Path

import pytest

from agent.enroll_files import write_enrollment
from agent.install_service import (
    SHIPPED_UNIT,
    UNIT_NAME,
    InstallFailed,
    Layout,
    Ran,
    UnitFacts,
    install,
    rtcc_command,
)
from tests.helpers import assert_unit_file_verifies
from tests.service_host import SERVICE_IDS, RecordingHost

SHIPPED = SHIPPED_UNIT.read_text()
START = [
    ["systemctl", "daemon-reload"],
    ["systemctl", "enable", UNIT_NAME],
    ["systemctl", "restart", UNIT_NAME],
]


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout.from_environ({"RTCC_INSTALL_ROOT": str(tmp_path / "root")}, SHIPPED)
    files = ("agent.toml", "tls/unit.pem", "tls/unit.key", "identity/unit.key")
    write_enrollment(layout.folder, {rel: b"x" for rel in files})
    return layout


def installed(layout: Layout, host: RecordingHost) -> str:
    out = io.StringIO()
    install(layout, SHIPPED, host, out)
    return out.getvalue()


def owners(folder: Path) -> set[tuple[int, int]]:
    found = {(folder.lstat().st_uid, folder.lstat().st_gid)}
    for path in folder.rglob("*"):
        found.add((path.lstat().st_uid, path.lstat().st_gid))
    return found


def test_the_shipped_unit_runs_the_agent_from_where_enrollment_writes() -> None:
    facts = UnitFacts.parse(SHIPPED)
    assert str(facts.state_dir) == "/var/lib/rtcc-agent"
    assert str(facts.config) == "/var/lib/rtcc-agent/agent.toml"
    assert (facts.user, facts.group) == ("rtcc-agent", "rtcc-agent")


def test_a_unit_reading_its_config_elsewhere_is_refused() -> None:
    moved = SHIPPED.replace("--config /var/lib/rtcc-agent/agent.toml", "--config /etc/a.toml")
    with pytest.raises(InstallFailed, match=r"reads /etc/a.toml, but enrollment writes"):
        UnitFacts.parse(moved)


def test_as_root_with_systemd_it_is_installed_owned_and_started(layout: Layout) -> None:
    host = RecordingHost()
    said = installed(layout, host)
    assert layout.unit_file == layout.root / "etc/systemd/system/rtcc-agent.service"
    text = layout.unit_file.read_text()
    start = f"ExecStart={' '.join(rtcc_command())} agent --config /var/lib/rtcc-agent/agent.toml"
    assert start in text.splitlines()
    assert text.replace(start, "") == SHIPPED.replace(
        next(line for line in SHIPPED.splitlines() if line.startswith("ExecStart=")), ""
    )
    assert oct(layout.unit_file.stat().st_mode & 0o777) == "0o644"
    useradd = host.calls[0]
    assert useradd[:3] == ["useradd", "--system", "--user-group"]
    assert useradd[useradd.index("--groups") + 1] == "dialout,video"
    assert useradd[-1] == "rtcc-agent"
    assert host.calls[1:] == START
    assert owners(layout.folder) == {SERVICE_IDS}
    assert "Created system user rtcc-agent." in said
    assert f"Enabled and started {UNIT_NAME}" in said


def test_an_existing_user_is_used_and_a_missing_group_left_out(layout: Layout) -> None:
    host = RecordingHost(users={"rtcc-agent": SERVICE_IDS})
    installed(layout, host)
    assert host.calls == START
    no_video = RecordingHost(groups=frozenset({"dialout"}))
    installed(layout, no_video)
    assert no_video.calls[0][no_video.calls[0].index("--groups") + 1] == "dialout"


def test_without_systemd_the_commands_are_given_instead(layout: Layout) -> None:
    host = RecordingHost(systemd=False)
    said = installed(layout, host)
    assert [c[0] for c in host.calls] == ["useradd"]
    assert "systemd is not running here" in said
    assert "systemctl daemon-reload; systemctl enable rtcc-agent.service;" in said
    assert layout.unit_file.exists()


def test_not_root_it_places_the_unit_and_says_what_to_run_as_root(layout: Layout) -> None:
    host = RecordingHost(root=False)
    before = owners(layout.folder)
    said = installed(layout, host)
    assert host.calls == []
    assert owners(layout.folder) == before
    assert "Not root: rtcc-agent not created" in said
    assert "useradd --system --user-group" in said and "chown -R rtcc-agent:rtcc-agent" in said
    assert "Not root: the service is not started. As root run: systemctl daemon-reload" in said


@pytest.mark.parametrize(
    ("failing", "message"),
    [
        ("useradd", "useradd rtcc-agent failed: useradd: cannot lock /etc/passwd"),
        ("systemctl restart", "systemctl restart rtcc-agent.service failed: unit failed"),
    ],
)
def test_a_failing_command_is_named(layout: Layout, failing: str, message: str) -> None:
    output = "useradd: cannot lock /etc/passwd" if failing == "useradd" else "unit failed"
    host = RecordingHost(failing={failing: Ran(1, output)})
    with pytest.raises(InstallFailed) as failed:
        installed(layout, host)
    assert str(failed.value) == message


def test_an_unwritable_unit_folder_is_found_before_anything_is_done(layout: Layout) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = layout.root / "etc"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(InstallFailed, match="run it as root"):
            layout.check_writable(RecordingHost(root=False))
    finally:
        locked.chmod(0o700)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_installed_unit_verifies(layout: Layout) -> None:
    installed(layout, RecordingHost())
    assert_unit_file_verifies(layout.unit_file)
