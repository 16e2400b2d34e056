#!/bin/bash
# A Slurm array job: N tasks, each runs one deterministic 1/N of the job's images into its own
# database (results.shard-I-of-N.db beside the job's database), then one dependent job merges.
#
#   sbatch --array=0-7 Jobs/slurm-array.sh Jobs/example.yaml
#   # after all tasks end (or chain it: sbatch --dependency=afterok:<array job id> ...):
#   sambatch merge results.db Jobs/example.shard-*-of-8.db
#
# A task that is preempted or times out can simply be requeued: `sambatch run` resumes its shard
# where it stopped (results are committed per image). Exit status 2 means the shard finished with
# some failed images or rejected prompts (see `sambatch status job.yaml --shard I/N`).
#SBATCH --job-name=sambatch
#SBATCH --cpus-per-task=4
#SBATCH --mem=4G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=sambatch-%A_%a.log
set -euo pipefail

JOB=${1:?usage: sbatch --array=0-N-1 slurm-array.sh job.yaml}
SAMBATCH=${SAMBATCH:-sambatch}            # path to the release binary
export SAMBATCH_MODEL=${SAMBATCH_MODEL:-}   # optional: overrides the job's model

# workers in the job file should match --cpus-per-task; the shard count is the array size.
COUNT=${SLURM_ARRAY_TASK_COUNT:?run this with sbatch --array}
"$SAMBATCH" run "$JOB" --shard "${SLURM_ARRAY_TASK_ID}/${COUNT}" || status=$?
# 2 = finished with some failed items: the shard is complete, do not make Slurm retry it.
if [ "${status:-0}" -ne 0 ] && [ "${status:-0}" -ne 2 ]; then exit "$status"; fi
