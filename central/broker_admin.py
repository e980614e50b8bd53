"""The center's hand on the broker's access rules: add an enrolled unit, revoke one, replace
its gateway, and bring the broker's list of units in line with the center's.

It connects with the center's admin certificate (its CN is the admin identity, which the
dynsec configuration of central/broker_security.py lets administer the plugin and nothing
else) and sends dynamic-security control messages, waiting for their answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from central.broker_security import (
    CONTROL_TOPIC,
    RESPONSE_TOPIC,
    add_unit_commands,
    control_answers,
    control_errors,
    control_payload,
    remove_unit_commands,
    sync_commands,
)
from runtime.config import BrokerUrl, MqttTuning
from runtime.mqtt import MqttLink, Subscription


class BrokerAdminError(Exception):
    pass


class BrokerAdmin:
    def __init__(
        self,
        client_id: str,
        url: BrokerUrl,
        tuning: MqttTuning,
        timeout_s: float = 5.0,
    ) -> None:
        self.timeout_s = timeout_s
        self._waiting: dict[str, asyncio.Future[list[dict[str, Any]]]] = {}
        self.link = MqttLink(
            client_id=client_id,
            urls=[url],
            tuning=tuning,
            subscriptions=[Subscription(RESPONSE_TOPIC)],
            on_message=self._on_message,
        )

    @contextlib.asynccontextmanager
    async def running(self, wait: bool = True) -> AsyncIterator[BrokerAdmin]:
        """The link runs (reconnecting by itself) for the duration of the block; with
        `wait`, the block starts once it is connected (TimeoutError if not in time)."""
        task = asyncio.create_task(self.link.run())
        try:
            if wait:
                await asyncio.wait_for(self.link.connected.wait(), self.timeout_s)
            yield self
        finally:
            await self.link.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def add_unit(self, unit_id: str) -> None:
        """Let an enrolled unit use its own topics (adding it twice is harmless)."""
        await self._send(add_unit_commands(unit_id))

    async def remove_unit(self, unit_id: str) -> None:
        """Throw the unit out now and leave it no permission (removing it twice is
        harmless). Its certificate must be in a CRL the broker reloaded first
        (`reload_broker`), or it could connect again and wait for its rights to return."""
        await self._send(remove_unit_commands(unit_id))

    async def reload_broker(self, reload: Callable[[], None]) -> None:
        """Signal the broker to reload (its CRL) and return once it has: a signal is
        handled at the end of the loop turn it arrives in, so after any answer to a
        request sent once the signal was delivered."""
        reload()
        await self._send([{"command": "getDefaultACLAccess"}])

    async def sync_units(self, enrolled: set[str]) -> None:
        """Make the units the broker lets in exactly `enrolled`: for a broker whose plugin
        file was made before enrollments or revocations the center recorded meanwhile."""
        (listed,) = await self._send([{"command": "listClients", "count": -1}])
        clients = listed.get("data", {}).get("clients", [])
        commands = sync_commands(clients, enrolled)
        if commands:
            await self._send(commands)

    async def _send(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        correlation = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[dict[str, Any]]] = loop.create_future()
        self._waiting[correlation] = answer
        try:
            await self.link.publish(CONTROL_TOPIC, control_payload(commands, correlation))
            answers = await asyncio.wait_for(answer, self.timeout_s)
        except TimeoutError:
            raise BrokerAdminError("the broker did not answer a dynsec command") from None
        finally:
            self._waiting.pop(correlation, None)
        errors = control_errors(answers)
        if errors:
            raise BrokerAdminError("; ".join(errors))
        return answers

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        for correlation, answer in list(self._waiting.items()):
            answers = control_answers(payload, correlation)
            if answers is not None and not answer.done():
                answer.set_result(answers)
