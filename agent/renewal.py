"""The agent renews its own certificate before it expires (supervised task).

When the schedule (agent/renewal_core.py) says so, and while the unit is online: a new TLS
key made here, its certificate request signed with the evidence key registered at enrollment
(protocol/renewal.py), sent to the center over HTTPS; the answer checked, the new pair put in
force as one (agent/renewal_files.py), then the MQTT link reconnects with it. The link reads
its certificate files at each connection, and the outbox keeps every event until the broker
acknowledges it, so events produced meanwhile are sent on the new connection. The old
certificate stays valid at the center until it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from agent.config import AgentSettings
from agent.enroll import certificate_request
from agent.renewal_core import CertFacts, Outcome, RenewalStatus, Schedule, answer_problem
from agent.renewal_files import Pair, install, recover
from protocol.renewal import RENEW_ROUTE, RenewAnswer, signed_request
from runtime.mqtt import MqttLink

log = structlog.get_logger("rtcc.agent.renewal")

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# The longest sleep before looking at the certificate again: the files may have been
# replaced (a new enrollment) and the wall clock may have been set meanwhile.
MAX_SLEEP_S = 3600.0
MAX_ANSWER_BYTES = 1 << 20


class RenewFailed(Exception):
    def __init__(self, detail: str, outcome: Outcome = "failed") -> None:
        super().__init__(detail)
        self.outcome = outcome


def not_renewing(settings: AgentSettings) -> str | None:
    """Why this agent does not renew its certificate, or None when it does."""
    tls = settings.mqtt.tls
    if not settings.renewal.enabled:
        return "renewal.enabled is false"
    if tls.cert_file is None or tls.key_file is None:
        return "no client certificate (mqtt.tls)"
    if not (settings.center_url or "").startswith("https://"):
        return "center_url is not https://"
    return None


def recover_pair(settings: AgentSettings) -> None:
    """Before the first connection: finish or discard a swap a crash interrupted."""
    tls = settings.mqtt.tls
    if tls.cert_file is None or tls.key_file is None:
        return
    done = recover(Pair(tls.cert_file, tls.key_file))
    if done is not None:
        log.warning("certificate_swap_recovered", outcome=done, cert_file=str(tls.cert_file))


class Renewer:
    def __init__(
        self,
        settings: AgentSettings,
        link: MqttLink,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        tls = settings.mqtt.tls
        assert tls.cert_file is not None and tls.key_file is not None
        assert settings.center_url is not None
        self._settings = settings
        self._pair = Pair(tls.cert_file, tls.key_file)
        self._evidence_key = settings.data_dir / "identity" / "unit.key"
        self._url = settings.center_url.rstrip("/") + RENEW_ROUTE
        self._link = link
        self._clock = clock
        r = settings.renewal
        self.schedule = Schedule(r.share, r.min_days, r.window_s, r.retry_max_s, rand)
        self.status = RenewalStatus()
        self._log = log.bind(unit_id=settings.unit_id)

    async def run(self) -> None:
        warned_expired = False
        while True:
            facts = await asyncio.to_thread(self._facts)
            if facts is None:  # unreadable, and logged: a new enrollment may replace it
                await asyncio.sleep(MAX_SLEEP_S)
                continue
            now = self._clock()
            at = self.schedule.next_attempt(facts, now)
            if at is None:
                if not warned_expired:
                    self._log.error("certificate_expired", serial=facts.serial, fix="enroll again")
                    warned_expired = True
                await asyncio.sleep(MAX_SLEEP_S)
                continue
            warned_expired = False
            if at > now:
                await asyncio.sleep(min(at - now, MAX_SLEEP_S))
                continue
            if not self._link.connected.is_set():
                # Renewal ends with a reconnect; a unit offline would only spend its
                # attempts. Once online, the certificate is read again (it may be new).
                await self._link.connected.wait()
                continue
            await self.attempt(facts)

    async def attempt(self, facts: CertFacts) -> None:
        try:
            serial = await self._renew(facts)
        except RenewFailed as exc:
            now = self._clock()
            self.schedule.attempted(now, ok=False)
            self.status.record(exc.outcome, str(exc), now)
            retry_in = max(0.0, self.schedule.not_before - now)
            self._log.warning(
                "certificate_renewal_failed",
                outcome=exc.outcome,
                detail=str(exc),
                retry_in_s=round(retry_in),
            )
            return
        now = self._clock()
        self.schedule.attempted(now, ok=True)
        self.status.record("ok", serial, now)
        self._log.info("certificate_renewed", serial=serial, previous=facts.serial)
        self._link.reconnect("certificate renewed")

    def _facts(self) -> CertFacts | None:
        try:
            cert = x509.load_pem_x509_certificate(self._pair.cert_file.read_bytes())
        except (OSError, ValueError) as exc:
            self._log.error(
                "certificate_unreadable", file=str(self._pair.cert_file), error=str(exc)
            )
            return None
        facts = CertFacts.of(cert)
        self.status.expires_at, self.status.serial = facts.not_after, facts.serial
        return facts

    async def _renew(self, facts: CertFacts) -> str:
        key = ec.generate_private_key(ec.SECP256R1())
        csr = certificate_request(key).decode()
        try:
            evidence = Ed25519PrivateKey.from_private_bytes(self._evidence_key.read_bytes())
        except (OSError, ValueError) as exc:
            raise RenewFailed(f"evidence key {self._evidence_key}: {exc}") from None
        unit_id = self._settings.unit_id
        request = signed_request(evidence, unit_id, facts.serial, csr, int(self._clock()))
        answer = await self._post(request.model_dump_json().encode())
        problem = answer_problem(answer, key.public_key(), unit_id, self._cas(answer))
        if problem is not None:
            raise RenewFailed(f"the center's answer is refused here: {problem}")
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            await asyncio.to_thread(install, self._pair, answer.certificate.encode(), key_pem)
        except OSError as exc:
            # Finish or discard what got written, as at start: the pair in force stays whole.
            with contextlib.suppress(OSError):
                await asyncio.to_thread(recover, self._pair)
            raise RenewFailed(f"writing the new pair: {exc}") from None
        return answer.serial

    def _cas(self, answer: RenewAnswer) -> list[x509.Certificate]:
        """The CA the unit trusts for its broker; the answered one when it has none of its
        own (the center's HTTPS certificate was checked)."""
        ca_file: Path | None = self._settings.mqtt.tls.ca_file
        try:
            data = ca_file.read_bytes() if ca_file is not None else answer.ca.encode()
            return x509.load_pem_x509_certificates(data)
        except (OSError, ValueError) as exc:
            raise RenewFailed(f"the device CA: {exc}") from None

    async def _post(self, body: bytes) -> RenewAnswer:
        headers = {"Content-Type": "application/json"}
        try:
            async with httpx.AsyncClient(
                timeout=TIMEOUT, verify=self._settings.center_tls(), follow_redirects=False
            ) as http:
                response = await http.post(self._url, content=body, headers=headers)
        except (httpx.HTTPError, OSError) as exc:
            raise RenewFailed(f"cannot reach {self._url}: {exc}") from None
        if response.status_code in (400, 403, 422):
            raise RenewFailed(f"the center refused: {_detail(response)}", "refused")
        if response.status_code != 200:
            raise RenewFailed(f"the center answered HTTP {response.status_code}")
        if len(response.content) > MAX_ANSWER_BYTES:
            raise RenewFailed("the center answered more than a certificate")
        try:
            return RenewAnswer.model_validate_json(response.content)
        except ValidationError as exc:
            problems = exc.error_count()
            raise RenewFailed(f"the center's answer is not a renewal ({problems} errors)") from None


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return f"{detail or response.reason_phrase} (HTTP {response.status_code})"
