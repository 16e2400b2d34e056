#!/bin/bash
# Starts N `sambatch run`s of one job at the same moment on a fresh database, ROUNDS times, with
# the fake segmenter (issue 7: two and three concurrent runs). Each round must end with every
# image written exactly once: one run does the job and the others refuse naming it ("in use by
# another run of this job: pid P on HOST, started T"), or find it finished ("Nothing to do").
#
#   Scripts/concurrent_runs.sh JOB.yaml [N=3] [ROUNDS=10] [SAMBATCH=.build/release/sambatch]
#
# JOB.yaml: a job for the fake segmenter, e.g. from Scripts/make_scale_job.py --images 200.
# SAMBATCH_FAKE_DELAY_MS (default 10) slows the fake encoder so that the runs overlap.
# Exit status 0 when every round was right, 1 otherwise.
set -u
job=${1:?usage: concurrent_runs.sh JOB.yaml [N] [ROUNDS] [SAMBATCH]}
n=${2:-3}
rounds=${3:-10}
bin=${4:-.build/release/sambatch}
db=$(dirname "$job")/results.db
export SAMBATCH_FAKE_SEGMENTER=1 SAMBATCH_FAKE_DELAY_MS=${SAMBATCH_FAKE_DELAY_MS:-10}
logs=$(mktemp -d)
bad=0
for round in $(seq "$rounds"); do
  rm -f "$db" "$db-wal" "$db-shm"
  pids=()
  for i in $(seq "$n"); do
    "$bin" run "$job" >"$logs/$i.out" 2>"$logs/$i.err" &
    pids+=($!)
  done
  worked=0 refused=0 finished=0 other=0
  for i in $(seq "$n"); do
    wait "${pids[$((i - 1))]}"
    status=$?
    if grep -q "in use by another run of this job: pid" "$logs/$i.err"; then
      refused=$((refused + 1))
    elif grep -q "Nothing to do" "$logs/$i.out"; then
      finished=$((finished + 1))
    elif [ "$status" -eq 0 ] || [ "$status" -eq 2 ]; then
      worked=$((worked + 1))
    else
      other=$((other + 1))
      echo "round $round, run $i: exit $status: $(grep -v 'fake segmenter' "$logs/$i.err" | head -2)"
    fi
  done
  # Every image processed once: the runs' counts add up to the images, none is pending, and no
  # image has its results twice.
  read -r images written pending duplicates < <(sqlite3 -separator ' ' "$db" "
    SELECT (SELECT COUNT(*) FROM images), (SELECT SUM(images_done + images_failed) FROM runs),
      (SELECT COUNT(*) FROM images WHERE status = 'pending'),
      (SELECT COUNT(*) - COUNT(DISTINCT image_id || '/' || prompt_index || '/' || mask_index) FROM masks)")
  verdict=ok
  if [ "$worked" -ne 1 ] || [ "$other" -ne 0 ] || [ "$written" != "$images" ] || [ "$pending" != 0 ] \
    || [ "$duplicates" != 0 ]; then
    verdict=WRONG
    bad=$((bad + 1))
  fi
  echo "round $round: $worked worked, $refused refused, $finished found it done, $other failed;" \
    "$images images, $written written by the runs, $pending pending, $duplicates duplicate masks: $verdict"
done
rm -rf "$logs"
echo "$n concurrent runs, $rounds rounds: $((rounds - bad)) right, $bad wrong"
[ "$bad" -eq 0 ]
