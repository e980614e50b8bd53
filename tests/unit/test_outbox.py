import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from agent.outbox import Outbox
from agent.store import Meta, SeenCommands, open_store


def test_rows_come_back_in_order_and_ack_deletes(tmp_path: Path) -> None:
    box = Outbox(open_store(tmp_path / "a.db"))
    ids = [box.put(f"m{i}", "t", float(i), b"x" * 10) for i in range(5)]
    assert [r.msg_id for r in box.peek()] == [f"m{i}" for i in range(5)]
    assert [r.msg_id for r in box.peek(after_row=ids[1], limit=2)] == ["m2", "m3"]
    box.ack(ids[0])
    box.ack(ids[0])
    assert box.rows == 4 and box.size_bytes == 40
    assert box.peek(limit=1)[0].msg_id == "m1"


def test_bounds_drop_oldest_and_count(tmp_path: Path) -> None:
    conn = open_store(tmp_path / "a.db")
    box = Outbox(conn, max_rows=3, max_bytes=1000)
    for i in range(5):
        box.put(f"m{i}", "t", 0.0, b"x")
    assert [r.msg_id for r in box.peek()] == ["m2", "m3", "m4"]
    assert box.dropped == 2
    box = Outbox(conn, max_rows=100, max_bytes=21)
    box.put("big", "t", 0.0, b"y" * 20)
    assert box.size_bytes <= 21 and box.peek()[-1].msg_id == "big"
    assert box.dropped == 2 + 2


def test_survives_reopen(tmp_path: Path) -> None:
    box = Outbox(open_store(tmp_path / "a.db"))
    box.put("m1", "t", 1.0, b"body")
    box.discard(box.put("m2", "t", 1.0, b"body"))
    box = Outbox(open_store(tmp_path / "a.db"))
    assert [r.msg_id for r in box.peek()] == ["m1"] and box.rows == 1 and box.dropped == 1


WRITER = """
import sys, time
from agent.outbox import Outbox
from agent.store import open_store
box = Outbox(open_store(__import__("pathlib").Path(sys.argv[1])))
i = 0
while True:
    box.put(f"m{i}", "t", time.time(), b"x" * 200)
    print(i, flush=True)
    i += 1
"""


def test_kill_9_loses_no_committed_row(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        assert proc.stdout is not None
        last = -1
        deadline = time.monotonic() + 10
        while last < 50 and time.monotonic() < deadline:
            last = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Every row the writer reported as stored is there, in order, and the file is sound.
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        box = Outbox(open_store(db))
        ids = [r.msg_id for r in box.peek(limit=1_000_000)]
        assert {f"m{i}" for i in range(last + 1)} <= set(ids)
        for row in box.peek(limit=1_000_000):
            box.ack(row.row_id)


def test_session_ids_grow_across_reopen(tmp_path: Path) -> None:
    assert Meta(open_store(tmp_path / "a.db")).next_session_id() == 1
    meta = Meta(open_store(tmp_path / "a.db"))
    assert meta.next_session_id() == 2
    assert meta.next_session_id() == 3


def test_seen_commands_expire_and_are_capped(tmp_path: Path) -> None:
    seen = SeenCommands(open_store(tmp_path / "a.db"), max_rows=3)
    assert seen.add_if_new("a", expires_at=10.0, now=0.0)
    assert not seen.add_if_new("a", expires_at=10.0, now=1.0)
    assert seen.add_if_new("a", expires_at=20.0, now=11.0)  # the old one expired
    for name in "bcde":
        seen.add_if_new(name, expires_at=30.0, now=12.0)
    count = open_store(tmp_path / "a.db").execute("SELECT COUNT(*) FROM seen_commands")
    assert count.fetchone()[0] == 3
