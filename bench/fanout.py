"""Who is near the scene: the share recipients of a scene among 5,000 units spread over a
city (30 x 30 km around lower Manhattan), through the grid index, against a brute-force scan
(haversine to every unit, then the same rule) in the same run; and the cost of a unit's move
in the index against a plain dict assignment, which is all the scan needs. Both answers are
checked equal for every scene.
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from bench.results import write_results
from central.fanout_policy import Candidate, Recipient, select_share_recipients
from central.nearby import NearbyIndex
from protocol.geo import bearing_deg, haversine_m

CITY = (40.71, -74.00)
METRES_PER_DEG_LAT = 111_195.0
MOVE_BATCH = 100  # moves timed together: one move is near the timer's own cost

Point = tuple[float, float]
T = TypeVar("T")


def city_point(rng: random.Random, side_m: float) -> Point:
    north, east = (rng.uniform(-side_m / 2, side_m / 2) for _ in range(2))
    lat = CITY[0] + north / METRES_PER_DEG_LAT
    return lat, CITY[1] + east / (METRES_PER_DEG_LAT * math.cos(math.radians(lat)))


def brute_force_recipients(
    positions: Mapping[str, Point],
    candidates: Mapping[str, Candidate],
    scene: Point,
    radius_m: float,
    exclude: str,
) -> list[Recipient]:
    """The share rule by scanning every unit: what the center would do without the index."""
    found = []
    for unit_id, position in positions.items():
        distance = haversine_m(*scene, *position)
        unit = candidates[unit_id]
        ready = unit.online and unit.fresh and unit.patrol_login and unit_id != exclude
        if distance <= radius_m and ready:
            found.append(Recipient(unit_id, distance, bearing_deg(*position, *scene)))
    return sorted(found, key=lambda r: (r.distance_m, r.unit_id))


def summarise(operation: str, system: str, samples_us: list[float]) -> dict[str, Any]:
    ordered = sorted(samples_us)
    return {
        "operation": operation,
        "system": system,
        "p50_us": statistics.median(ordered),
        "p99_us": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "samples": len(ordered),
    }


def timed_us(call: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter_ns()
    result = call()
    return (time.perf_counter_ns() - start) / 1000, result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.fanout", description=__doc__)
    parser.add_argument("--units", type=int, default=5_000)
    parser.add_argument("--side-km", type=float, default=30.0, help="the city's square side")
    parser.add_argument("--radius-m", type=float, default=2_000.0)
    parser.add_argument("--scenes", type=int, default=400)
    parser.add_argument("--moves", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    rng, side_m = random.Random(args.seed), args.side_km * 1000
    positions = {f"unit-{n:05d}": city_point(rng, side_m) for n in range(args.units)}
    candidates = {
        unit_id: Candidate(
            online=rng.random() < 0.9, patrol_login=rng.random() < 0.8, fresh=rng.random() < 0.95
        )
        for unit_id in positions
    }
    index = NearbyIndex()
    for unit_id, (lat, lon) in positions.items():
        index.update(unit_id, lat, lon)

    gc.collect()
    indexed, scanned, found = [], [], []
    for _ in range(args.scenes):
        scene, source = city_point(rng, side_m), rng.choice(list(positions))
        took, ours = timed_us(
            partial(select_share_recipients, index, candidates, scene, args.radius_m, (), (source,))
        )
        indexed.append(took)
        took, theirs = timed_us(
            partial(brute_force_recipients, positions, candidates, scene, args.radius_m, source)
        )
        scanned.append(took)
        if ours != theirs:
            raise AssertionError(f"index and scan disagree at {scene}")
        found.append(len(theirs))

    moving = [rng.choice(list(positions)) for _ in range(args.moves)]
    steps = [(rng.uniform(-30, 30), rng.uniform(-30, 30)) for _ in range(args.moves)]
    moves = []
    for unit_id, (north, east) in zip(moving, steps, strict=True):
        lat, lon = positions[unit_id]
        moves.append((unit_id, lat + north / METRES_PER_DEG_LAT, lon + east / 84_000.0))
    index_moves, dict_moves = [], []
    table = dict(positions)
    for start in range(0, len(moves), MOVE_BATCH):
        batch = moves[start : start + MOVE_BATCH]
        began = time.perf_counter_ns()
        for unit_id, lat, lon in batch:
            index.update(unit_id, lat, lon)
        index_moves.append((time.perf_counter_ns() - began) / 1000 / len(batch))
        began = time.perf_counter_ns()
        for unit_id, lat, lon in batch:
            table[unit_id] = (lat, lon)
        dict_moves.append((time.perf_counter_ns() - began) / 1000 / len(batch))

    select = f"share recipients, r={args.radius_m:.0f} m"
    move = f"a unit moves (mean of {MOVE_BATCH})"
    rows = [
        summarise(select, "grid index", indexed),
        summarise(select, "baseline: scan every unit", scanned),
        summarise(move, "grid index", index_moves),
        summarise(move, "baseline: dict assignment", dict_moves),
    ]
    ratios = {
        "select_p50_scan_over_index": rows[1]["p50_us"] / rows[0]["p50_us"],
        "select_p99_scan_over_index": rows[1]["p99_us"] / rows[0]["p99_us"],
        "move_p50_index_over_dict": rows[2]["p50_us"] / rows[3]["p50_us"],
    }
    print(
        f"\nWho is near the scene: {args.units} units over {args.side_km:.0f} x "
        f"{args.side_km:.0f} km, {statistics.mean(found):.0f} recipients per scene on average\n"
    )
    print(f"{'operation':<34} {'system':<27} {'p50 us':>9} {'p99 us':>9}")
    for row in rows:
        line = f"{row['operation']:<34} {row['system']:<27}"
        print(f"{line} {row['p50_us']:>9.1f} {row['p99_us']:>9.1f}")
    print(
        f"\nscan / index: {ratios['select_p50_scan_over_index']:.1f}x at p50, "
        f"{ratios['select_p99_scan_over_index']:.1f}x at p99; a move costs "
        f"{ratios['move_p50_index_over_dict']:.1f}x a dict assignment"
    )
    write_results(
        "fanout",
        {"args": vars(args), "recipients_mean": statistics.mean(found), "rows": rows, **ratios},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
