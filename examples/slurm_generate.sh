#!/bin/bash
# Generate a large dataset as a Slurm job array: every task makes its own shards, then one
# dependent job joins them. Shard k is identical whichever task makes it (the plan depends only on
# the content config and the seed), and a re-submitted task skips shards that are already complete.
#
#   sbatch --array=0-44 examples/slurm_generate.sh        # 45 shards of 1000 for celeba_5k.toml
#   sbatch --dependency=singleton --job-name=miex-gen --wrap "miex data merge miex_celeba_5k"
#
# Not run on a Slurm cluster by the miex test-suite (none is available there): the same shard
# subsets and merge are tested with two local processes.
#SBATCH --job-name=miex-gen
#SBATCH --cpus-per-task=4
#SBATCH --gres=gpu:1
#SBATCH --time=02:00:00
#SBATCH --output=logs/miex-gen-%A_%a.out
set -euo pipefail
miex generate --config examples/celeba_5k.toml --shards "${SLURM_ARRAY_TASK_ID}" --quiet
