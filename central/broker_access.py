"""Keeps the supervised broker's door in line with the device records (central/device_watch.py).

When the records change (a second after any commit, at once for the API's own routes):

1. the CRL is written again and the broker reloads it, so that a revoked certificate's
   next TLS handshake fails;
2. the units that just lost a certificate are thrown out (dynsec deleteClient kicks their
   live connections; a replaced gateway's successor comes back in step 3);
3. the plugin's clients are made exactly the enrolled units.

`applied` is what the broker was last given; a pass that fails leaves it as it was, so the
next one does the whole work again (with jittered backoff). Every day the CRL is signed
again (OpenSSL refuses every client once a CRL is past its next update) and the broker's
and center's own certificates are issued again when near their end; every minute the
plugin's list is brought in line whatever happened (a broker restarted from an older file).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from sqlalchemy.exc import SQLAlchemyError

from central.broker import BrokerError, MosquittoProcess
from central.broker_admin import BrokerAdmin, BrokerAdminError
from central.db.devices import DeviceStanding
from central.device_watch import DeviceWatch
from central.provisioning import Provisioning
from runtime.backoff import Backoff, Retry
from runtime.mqtt import MqttError

log = structlog.get_logger("rtcc.broker_access")

FULL_SYNC_S = 60.0
DAILY_S = 86_400.0
REFRESH_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Work:
    """What one pass must do to bring the broker from `applied` to `standing` (pure)."""

    lost: frozenset[str]  # units that lost a certificate since `applied`
    write_crl: bool
    sync: bool

    @classmethod
    def plan(
        cls, applied: DeviceStanding, standing: DeviceStanding, daily_due: bool, sync_due: bool
    ) -> Work:
        new = standing.revoked.keys() - applied.revoked.keys()
        lost = frozenset(standing.revoked[serial] for serial in new)
        return cls(lost, bool(lost) or daily_due, standing != applied or sync_due)


@dataclass(frozen=True, slots=True)
class CenterHooks:
    """What the center does around the broker: the unit revoked (offline, its stream
    ended), its own certificates issued again when near their end (blocking: True when
    they changed) and its links made to reconnect with them."""

    unit_revoked: Callable[[str], Awaitable[None]]
    renew_certificates: Callable[[], bool]
    reconnect: Callable[[], None]


class BrokerAccess:
    def __init__(
        self,
        watch: DeviceWatch,
        provisioning: Provisioning,
        broker: MosquittoProcess,
        admin: BrokerAdmin,
        applied: DeviceStanding,
        hooks: CenterHooks,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`applied`: the records the broker's CRL and plugin file were made from."""
        self._watch = watch
        self._provisioning = provisioning
        self._broker = broker
        self._admin = admin
        self._applied = applied
        self._hooks = hooks
        self._clock = clock
        self._daily_at = clock()
        self._synced_at = -FULL_SYNC_S
        self._wake = asyncio.Event()
        watch.listeners.append(self._wake.set)
        self._requested = 0
        self._done = 0
        self._progress = asyncio.Condition()
        self.failures = 0

    async def refresh(self) -> bool:
        """Whether the broker was brought in line with the records as they are now within
        REFRESH_TIMEOUT_S (if not, the loop keeps trying)."""
        self._requested += 1
        wanted = self._requested
        self._wake.set()
        async with self._progress:
            try:
                await asyncio.wait_for(
                    self._progress.wait_for(lambda: self._done >= wanted), REFRESH_TIMEOUT_S
                )
            except TimeoutError:
                log.warning("broker_access_pending", failures=self.failures)
                return False
        return True

    async def run(self) -> None:
        retry = Retry(Backoff(initial_s=0.5, max_s=10.0))
        async with self._admin.running(wait=False):
            while True:
                self._wake.clear()
                request = self._requested
                try:
                    # Quietly, the first time: the link is still connecting.
                    await asyncio.wait_for(self._admin.link.connected.wait(), REFRESH_TIMEOUT_S)
                    await self._pass(fresh=request > self._done)
                    retry.reset()
                    delay = FULL_SYNC_S
                    async with self._progress:
                        self._done = max(self._done, request)
                        self._progress.notify_all()
                except (
                    BrokerAdminError,
                    BrokerError,
                    MqttError,
                    OSError,
                    SQLAlchemyError,
                    TimeoutError,
                ) as exc:
                    self.failures += 1
                    retry.failed()
                    delay = retry.delay()
                    log.error("broker_access_failed", error=str(exc), retry_in_s=round(delay, 2))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    async def _pass(self, fresh: bool) -> None:
        if fresh:
            await self._watch.check()  # a caller waits: the records as they are now
        now = self._clock()
        daily_due = now - self._daily_at >= DAILY_S
        standing = self._watch.standing
        work = Work.plan(self._applied, standing, daily_due, now - self._synced_at >= FULL_SYNC_S)
        if daily_due and await asyncio.to_thread(self._hooks.renew_certificates):
            await self._admin.reload_broker(self._broker.reload)
            self._hooks.reconnect()
            log.info("broker_certificates_renewed")
        if work.write_crl:
            await asyncio.to_thread(self._provisioning.write_crl)
            await self._admin.reload_broker(self._broker.reload)
            log.info("crl_reloaded", revoked=len(standing.revoked))
        if daily_due:
            self._daily_at = now
        for unit_id in sorted(work.lost):
            await self._admin.remove_unit(unit_id)
            log.info("unit_shut_out", unit_id=unit_id, enrolled=unit_id in standing.enrolled)
        if work.sync:
            await self._admin.sync_units(set(standing.enrolled))
            self._synced_at = now
        self._applied = standing
        for unit_id in sorted(work.lost - standing.enrolled):
            try:
                await self._hooks.unit_revoked(unit_id)
            except Exception:
                log.exception("unit_revoked_hook_failed", unit_id=unit_id)
