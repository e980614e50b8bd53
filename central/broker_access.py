"""Keeps the supervised broker's door in line with the center's record of devices.

The database is the one record of who is enrolled and what is revoked: enrollments and
revocations made through the API, by `rtcc provision revoke` in another process, or by
another center process sharing the database all land there. This loop looks at it every
second (a cheap revision query) and, when it changed:

1. writes the CRL again and has the broker reload it, so that a revoked certificate's next
   TLS handshake fails;
2. throws out the units that just lost a certificate (dynsec deleteClient kicks their live
   connections; a replaced gateway's successor comes back in step 3);
3. makes the plugin's clients exactly the enrolled units.

It also signs the CRL again every day (OpenSSL refuses every client once a CRL is past its
next update) and brings the plugin's list in line every minute whatever happened, for a
broker restarted from an older file. Revocation therefore takes effect within about a
second of its commit, and at once when the API's own routes ask (`refresh`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Awaitable, Callable

import structlog

from central.broker import BrokerError, MosquittoProcess
from central.broker_admin import BrokerAdmin, BrokerAdminError
from central.db.devices import DeviceStanding
from central.provisioning import Provisioning
from runtime.backoff import Backoff, Retry
from runtime.mqtt import MqttError

log = structlog.get_logger("rtcc.broker_access")

CHECK_S = 1.0
FULL_SYNC_S = 60.0
CRL_RESIGN_S = 86_400.0
REFRESH_TIMEOUT_S = 10.0

Revision = tuple[int, int, float | None, float | None]


class BrokerAccess:
    def __init__(
        self,
        provisioning: Provisioning,
        broker: MosquittoProcess,
        admin: BrokerAdmin,
        on_revoked: Callable[[str], Awaitable[None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._provisioning = provisioning
        self._broker = broker
        self._admin = admin
        self._on_revoked = on_revoked
        self._clock = clock
        self.standing = DeviceStanding(frozenset(), {}, frozenset())
        self._revision: Revision | None = None
        self._crl_signed_at = -CRL_RESIGN_S
        self._synced_at = -FULL_SYNC_S
        self._nudge = asyncio.Event()
        self._passes = 0
        self._passed = asyncio.Condition()
        self.failures = 0

    def prepare(self) -> None:
        """Before the broker starts (blocking): the CRL as the database has it, and the
        standing the loop compares with later."""
        self._provisioning.write_crl()
        self._crl_signed_at = self._clock()
        self.standing = self._provisioning.standing()
        self._revision = self._provisioning.revision()

    def shut_out(self, unit_id: str) -> bool:
        """Whether the unit enrolled once and holds no usable certificate now."""
        return self.standing.shut_out(unit_id)

    async def refresh(self) -> None:
        """Returns once a pass that began after this call has brought the broker in line
        (or REFRESH_TIMEOUT_S passed: the loop keeps trying)."""
        async with self._passed:
            wanted = self._passes + 2  # the pass under way may have read the database before
            self._nudge.set()
            try:
                await asyncio.wait_for(
                    self._passed.wait_for(lambda: self._passes >= wanted), REFRESH_TIMEOUT_S
                )
            except TimeoutError:
                log.warning("broker_access_refresh_slow")

    async def run(self) -> None:
        retry = Retry(Backoff(initial_s=0.5, max_s=10.0))
        async with self._admin.running():
            while True:
                try:
                    await self._pass()
                    retry.reset()
                    delay = CHECK_S
                except (BrokerAdminError, BrokerError, MqttError, OSError) as exc:
                    self.failures += 1
                    retry.failed()
                    delay = retry.delay()
                    log.error("broker_access_failed", error=str(exc), retry_in_s=round(delay, 2))
                async with self._passed:
                    self._passes += 1
                    self._passed.notify_all()
                self._nudge.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._nudge.wait(), delay)

    async def _pass(self) -> None:
        now = self._clock()
        revision = await asyncio.to_thread(self._provisioning.revision)
        changed = revision != self._revision
        if not changed and now - self._synced_at < FULL_SYNC_S:
            if now - self._crl_signed_at >= CRL_RESIGN_S:
                await self._write_crl_and_reload()
            return
        standing = await asyncio.to_thread(self._provisioning.standing)
        lost = {standing.revoked[s] for s in standing.revoked.keys() - self.standing.revoked}
        if lost or now - self._crl_signed_at >= CRL_RESIGN_S:
            await self._write_crl_and_reload()
        for unit_id in sorted(lost):
            await self._admin.revoke_unit(unit_id)
            log.info("unit_shut_out", unit_id=unit_id, enrolled=unit_id in standing.enrolled)
        await self._admin.sync_units(set(standing.enrolled))
        self.standing, self._revision, self._synced_at = standing, revision, now
        for unit_id in sorted(lost - standing.enrolled):
            await self._on_revoked(unit_id)

    async def _write_crl_and_reload(self) -> None:
        await asyncio.to_thread(self._provisioning.write_crl)
        self._crl_signed_at = self._clock()
        await self._admin.reload_broker(self._broker.reload)
        log.info("crl_reloaded", at=dt.datetime.fromtimestamp(self._crl_signed_at, dt.UTC))
