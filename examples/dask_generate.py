"""Generate shards on a Dask cluster through joblib's Dask backend.

    python examples/dask_generate.py tcp://scheduler:8786 examples/celeba_5k.toml

With no scheduler address a LocalCluster is started (what the miex tests run).
"""

from __future__ import annotations

import sys

import joblib
from dask.distributed import Client, LocalCluster

from miex_gen.config import GenerateConfig
from miex_gen.generate import generate


def main(address: str | None, config_path: str) -> None:
    client = Client(address) if address else Client(LocalCluster(n_workers=2, threads_per_worker=1))
    config = GenerateConfig.from_toml(config_path).with_overrides(workers=len(client.scheduler_info()["workers"]))
    with joblib.parallel_config(backend="dask"):
        result = generate(config)
    print(f"{result.num_samples} samples in {result.out} (complete: {result.complete})")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0] if len(args) == 2 else None, args[-1])
