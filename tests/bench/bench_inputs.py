"""How fast hostile input is refused; prints the slowest of --runs runs per case.

    python tests/bench/bench_inputs.py [--runs 3]

* every spoiled spec file of tests/unit/test_bad_input.py (50 MB, nested 100,000 deep, not
  UTF-8, a directory, a socket, ...), read as `dynia plan` reads it (dynia.spec.load.load_cluster),
  in a scratch copy of examples/;
* a compose file's alias bomb (9**7 strings once expanded) in each place of
  tests/unit/test_hostile_inputs.py, checked as `plan` checks it (dynia.spec.compose.check_all).

The tests assert what is refused and how it is said; the goal here is each refusal well under
5 s (it was an assertion of those tests, which a loaded machine could fail). Not collected by
pytest: timings belong in reports, not in assertions.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

GOAL = 5.0


def slowest(runs: int, once) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    return max(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from dynia.errors import DyniaError
    from dynia.spec import compose
    from dynia.spec.load import load_cluster
    from dynia.state.store import Project
    from tests.unit.test_bad_input import SPEC_FILE_CASES
    from tests.unit.test_hostile_inputs import BOMB, BOMB_PLACES, _service

    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="dynia-bench-inputs-") as tmp:
        print(f"spoiled spec files, read as plan reads them (slowest of {args.runs}):")
        for i, (name, spoil, _) in enumerate(SPEC_FILE_CASES):
            root = Path(tmp) / f"spec-{i}"
            shutil.copytree(REPO / "examples", root, ignore=shutil.ignore_patterns(".dynia", "deploy-config"))
            spoil(root / "clusters" / "shop.yaml")

            def read():
                try:
                    load_cluster(Project(root), "shop")
                except DyniaError:
                    return
                sys.exit(f"{name}: read without an error")

            seconds = slowest(args.runs, read)
            worst = max(worst, seconds)
            print(f"  {name:<24} {seconds * 1000:8.1f} ms")
        print(f"an alias bomb in a compose file, checked as plan checks it (slowest of {args.runs}):")
        for i, extra in enumerate(BOMB_PLACES):
            where = Path(tmp) / f"bomb-{i}"
            where.mkdir()
            spec, root = _service(where, BOMB + "services:\n  app:\n    image: x\n" + extra)
            seconds = slowest(args.runs, lambda: compose.check_all(spec, root))
            worst = max(worst, seconds)
            print(f"  {extra.splitlines()[-1].strip():<64} {seconds * 1000:8.1f} ms")
    print(f"slowest refusal {worst:.2f} s, goal < {GOAL:.0f} s: {'met' if worst < GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
