"""The one policy table: every role x action cell, and API scopes onto the same actions."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.access.policy import (
    POLICY,
    SCOPE_ACTIONS,
    Action,
    Principal,
    Role,
    Scope,
    allowed,
    client_allowed,
    needs_reason,
    needs_second_factor,
)

# x = allowed, . = refused. Written out by hand: a change to the table must change this too.
EXPECTED = """
action                 admin supervisor dispatcher tech patrol
units.list               .      x          x        .     .
units.view               .      x          x        .     .
commands.send            .      x          x        .     .
streams.remote_start     .      x          x        .     .
streams.watch            .      x          x        .     .
streams.list             .      x          x        .     .
streams.stop             .      x          x        .     .
streams.revoke_viewer    .      x          .        .     .
evidence.search          .      x          x        .     .
evidence.playback        .      x          x        .     .
evidence.download        .      x          .        .     .
evidence.verify          .      x          x        .     .
audit.read               .      x          .        .     .
audit.export             .      x          .        .     .
audit.purge              .      x          .        .     .
users.manage             x      .          .        .     .
settings.manage          x      .          .        .     .
api_clients.manage       x      .          .        .     .
devices.health           .      .          .        x     .
devices.provision        .      .          .        x     .
metrics.scrape           x      .          .        x     .
shares.create            .      x          x        .     .
shares.revoke            .      x          x        .     .
shares.receive           .      .          .        .     x
shares.open              .      .          .        .     x
alerts.read              .      x          x        .     .
alerts.acknowledge       .      x          x        .     .
api.docs                 x      x          x        x     .
"""


def expected_matrix() -> dict[tuple[Role, Action], bool]:
    header, *rows = EXPECTED.strip().splitlines()
    roles = [Role(name) for name in header.split()[1:]]
    matrix: dict[tuple[Role, Action], bool] = {}
    for row in rows:
        action, *cells = row.split()
        assert len(cells) == len(roles), row
        for role, cell in zip(roles, cells, strict=True):
            assert cell in ("x", "."), row
            matrix[Role(role), Action(action)] = cell == "x"
    return matrix


MATRIX = expected_matrix()


def test_the_expected_matrix_covers_every_role_and_action_once() -> None:
    assert set(MATRIX) == {(role, action) for role in Role for action in Action}
    assert len(EXPECTED.strip().splitlines()) == len(Action) + 1
    assert set(POLICY) == set(Role)


@pytest.mark.parametrize(("role", "action"), sorted(MATRIX))
def test_every_cell_of_the_policy(role: Role, action: Action) -> None:
    assert allowed(role, action) is MATRIX[role, action]


def test_supervisors_can_do_all_that_dispatchers_can_and_more() -> None:
    assert POLICY[Role.DISPATCHER] < POLICY[Role.SUPERVISOR]


def test_no_one_but_supervisors_and_dispatchers_touches_video() -> None:
    video = {
        Action.LIVE_WATCH,
        Action.REMOTE_START,
        Action.EVIDENCE_PLAYBACK,
        Action.EVIDENCE_DOWNLOAD,
    }
    for role in (Role.ADMIN, Role.TECH, Role.PATROL):
        assert not POLICY[role] & video, role


EXPECTED_SCOPES: dict[Scope, set[str]] = {
    Scope.UNITS_READ: {"units.list", "units.view"},
    Scope.UNITS_COMMAND: {"commands.send"},
    Scope.STREAMS_START: {"streams.remote_start"},
    Scope.STREAMS_WATCH: {"streams.watch", "streams.list"},
    Scope.STREAMS_MANAGE: {"streams.list", "streams.stop", "streams.revoke_viewer"},
    Scope.EVIDENCE_READ: {"evidence.search", "evidence.verify"},
    Scope.EVIDENCE_PLAYBACK: {"evidence.playback"},
    Scope.EVIDENCE_DOWNLOAD: {"evidence.download"},
    Scope.ALERTS_READ: {"alerts.read"},
    Scope.ALERTS_ACKNOWLEDGE: {"alerts.acknowledge"},
    Scope.AUDIT_READ: {"audit.read", "audit.export"},
    Scope.DEVICES_READ: {"devices.health"},
    Scope.METRICS_SCRAPE: {"metrics.scrape"},
}
PEOPLE_ONLY = {
    Action.USERS_MANAGE,
    Action.SETTINGS_MANAGE,
    Action.API_CLIENTS_MANAGE,
    Action.AUDIT_PURGE,
    Action.DEVICES_PROVISION,
    Action.SHARES_CREATE,
    Action.SHARES_REVOKE,
    Action.SHARES_RECEIVE,
    Action.SHARES_OPEN,
    Action.API_DOCS,
}


@pytest.mark.parametrize("scope", list(Scope))
def test_every_scope_against_every_action(scope: Scope) -> None:
    assert set(SCOPE_ACTIONS) == set(Scope)
    for action in Action:
        assert client_allowed({scope}, action) is (action in EXPECTED_SCOPES[scope]), action


def test_no_scope_grants_what_only_people_may_do() -> None:
    for action in Action:
        assert client_allowed(set(Scope), action) is (action not in PEOPLE_ONLY), action


def test_every_scope_grants_only_what_some_role_may_do() -> None:
    for scope, actions in SCOPE_ACTIONS.items():
        for action in actions:
            assert any(allowed(role, action) for role in Role), (scope, action)


def test_no_scopes_grant_nothing() -> None:
    assert not any(client_allowed(set(), action) for action in Action)


@given(st.frozensets(st.sampled_from(list(Scope))), st.sampled_from(list(Action)))
def test_a_set_of_scopes_grants_what_any_of_them_grants(
    scopes: frozenset[Scope], action: Action
) -> None:
    assert client_allowed(scopes, action) is any(client_allowed({s}, action) for s in scopes)


def test_remote_start_alone_needs_a_reason() -> None:
    assert [action for action in Action if needs_reason(action)] == [Action.REMOTE_START]


def test_second_factor_for_admins_supervisors_and_dispatchers() -> None:
    assert {role for role in Role if needs_second_factor(role)} == {
        Role.ADMIN,
        Role.SUPERVISOR,
        Role.DISPATCHER,
    }


def test_a_principal_is_a_person_or_a_client_and_asks_the_matching_table() -> None:
    person = Principal("alice", role=Role.DISPATCHER)
    client = Principal("cad", scopes=frozenset({Scope.UNITS_READ}))
    for action in Action:
        assert person.may(action) is allowed(Role.DISPATCHER, action)
        assert client.may(action) is client_allowed({Scope.UNITS_READ}, action)
    with pytest.raises(ValueError, match="principal"):
        Principal("both", role=Role.ADMIN, scopes=frozenset({Scope.UNITS_READ}))
    with pytest.raises(ValueError, match="principal"):
        Principal("neither")
