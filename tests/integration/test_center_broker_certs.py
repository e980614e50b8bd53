"""The center's own broker and MQTT certificates: issued at first start, kept while good,
issued again (and said so) once near their end, as the daily check of the broker's keeper
does it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509

from central.center_broker import CenterBroker
from central.config import CentralSettings
from central.db.engine import default_url
from central.db.schema import open_migrated
from central.device_ca import RENEW_SERVICE_DAYS, SERVICE_DAYS
from central.device_watch import DeviceWatch
from central.provisioning import Provisioning
from runtime.config import load_settings


def test_the_centers_certificates_are_issued_again_near_their_end(tmp_path: Path) -> None:
    settings = load_settings(CentralSettings, data_dir=tmp_path, center_id="c1")
    database = open_migrated(default_url(tmp_path))
    try:
        provisioning = Provisioning(database, tmp_path, settings.provision)
        center_broker = CenterBroker(settings, provisioning, DeviceWatch(provisioning))
        ca = provisioning.ca
        # Made at the broker's first start; nothing to do the next day.
        old = ca.broker_files(["127.0.0.1"], dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        assert center_broker.renew_certificates()  # the center's two were missing
        assert not center_broker.renew_certificates()
        # The broker's certificate within RENEW_SERVICE_DAYS of its end: a new one.
        near_end = SERVICE_DAYS - RENEW_SERVICE_DAYS + 1
        ca.issue_broker(["127.0.0.1"], dt.datetime.now(dt.UTC) - dt.timedelta(days=near_end))
        before = old.cert_file.read_bytes()
        assert center_broker.renew_certificates()
        renewed = x509.load_pem_x509_certificate(old.cert_file.read_bytes())
        assert old.cert_file.read_bytes() != before
        left = renewed.not_valid_after_utc - dt.datetime.now(dt.UTC)
        assert left > dt.timedelta(days=SERVICE_DAYS - 1)
    finally:
        database.close()
