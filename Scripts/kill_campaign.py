#!/usr/bin/env python3
"""Interrupts `sambatch run` many times and checks that the job still ends as an uninterrupted
run does (issue 7): N kill -9 and M SIGTERM at random moments, each followed by a resume.

    .venv-ref/bin/python Scripts/kill_campaign.py --sambatch .build/release/sambatch \\
        --folder /tmp/kill-campaign --images 2000 --kills 100 --terms 20

It writes a fake-segmenter job of `--images` tiny images (Scripts/make_scale_job.py, needs Pillow)
plus one image that does not exist (a failed image must come out the same too), runs it once
uninterrupted into reference.db, then starts `sambatch run` over and over on results.db, sending
each process SIGKILL or SIGTERM (in a random order) after a random delay of 0 to `--max-after`
seconds, counted from when the run logs that it starts processing, or for a fraction `--early`
of them from the process's start (so that they land in the startup and planning). When the job is complete it compares results.db with the reference and starts another
round on a fresh database, until every signal was sent; the last round is finished with a run
that is not interrupted. Checked:

- `results` (the view, ordered) and every image's status, error and size equal the reference's;
- every run that a SIGTERM stopped (exit status 143) has its `runs` row closed with
  `interrupted (SIGTERM)`, and no `runs` row is left open at the end of a round;
- a finished job run again does nothing.

`--delay-ms` slows the fake encoder so that the signals land mid-job (it changes no result).
Exit status 0 when everything matched, 1 otherwise.
"""
import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def make_job(folder, images, boxes, seed):
    job = os.path.join(folder, "job.yaml")
    if os.path.exists(job):
        return job
    subprocess.run(
        [sys.executable, os.path.join(HERE, "make_scale_job.py"), folder, "--images", str(images), "--boxes",
         str(boxes), "--seed", str(seed)], check=True)
    # One image that is not there: its `failed` row and error must match too.
    path = os.path.join(folder, "instances.json")
    with open(path) as f:
        coco = json.load(f)
    next_id = len(coco["images"]) + 1
    coco["images"].append({"id": next_id, "file_name": "missing.jpg", "width": 64, "height": 64})
    coco["annotations"].append({
        "id": len(coco["annotations"]) + 1, "image_id": next_id, "category_id": 1, "bbox": [1, 1, 9, 9],
        "area": 81, "iscrowd": 0})
    with open(path, "w") as f:
        json.dump(coco, f)
    return job


def dump(database):
    """What a run must reproduce: every image's outcome and the results view, in order."""
    con = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = [("image",) + r for r in con.execute(
            "SELECT id, path, status, error, prompt_count, width, height FROM images ORDER BY id")]
        rows += [("result",) + r for r in con.execute(
            "SELECT * FROM results ORDER BY image_id, prompt_index, mask_index")]
        rows += [("prompt",) + r for r in con.execute(
            "SELECT image_id, prompt_index, source_id, category_id, box_x0, box_y0, box_x1, box_y1, warning, error"
            " FROM prompts ORDER BY image_id, prompt_index")]
        return rows
    finally:
        con.close()


def query(database, sql, args=()):
    if not os.path.exists(database):
        return []
    con = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.DatabaseError:  # killed before the schema was committed
        return []
    finally:
        con.close()


def pending(database):
    """Images left to do, or None before the plan is written (a kill can land between the
    schema and the plan)."""
    rows = query(database, "SELECT COUNT(*), SUM(status = 'pending') FROM images")
    return rows[0][1] if rows and rows[0][0] else None


def remove_database(database):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(database + suffix):
            os.remove(database + suffix)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sambatch", default=os.path.join(os.path.dirname(HERE), ".build", "release", "sambatch"))
    parser.add_argument("--folder", default="/tmp/kill-campaign")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--boxes", type=int, default=3)
    parser.add_argument("--kills", type=int, default=100, help="kill -9 to send")
    parser.add_argument("--terms", type=int, default=20, help="SIGTERM to send")
    parser.add_argument("--max-after", type=float, default=1.5,
                        help="longest wait before a signal, seconds (from the start of processing, or of the process)")
    parser.add_argument("--early", type=float, default=0.2,
                        help="fraction of signals timed from the process's start rather than from processing")
    parser.add_argument("--delay-ms", type=int, default=10, help="fake encoder delay during the campaign")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    os.makedirs(args.folder, exist_ok=True)
    job = make_job(args.folder, args.images, args.boxes, args.seed)
    env = dict(os.environ, SAMBATCH_FAKE_SEGMENTER="1", SAMBATCH_FAKE_DELAY_MS="0")
    env.pop("SAMBATCH_MODEL", None)

    reference = os.path.join(args.folder, "reference.db")
    remove_database(reference)
    started = time.time()
    whole = subprocess.run([args.sambatch, "run", job, "--database", reference], env=env, capture_output=True,
                           text=True)
    if whole.returncode not in (0, 2):
        sys.exit(f"the reference run failed ({whole.returncode}): {whole.stderr}")
    expected = dump(reference)
    print(f"reference: {whole.returncode=}, {len(expected)} rows, {time.time() - started:.1f} s", flush=True)

    database = os.path.join(args.folder, "results.db")
    remove_database(database)
    env["SAMBATCH_FAKE_DELAY_MS"] = str(args.delay_ms)
    signals = [signal.SIGKILL] * args.kills + [signal.SIGTERM] * args.terms
    rng.shuffle(signals)
    failures = []
    killed = set()
    # "in_run": the signal reached a process that had recorded its run (it was planning no more);
    # "before_run": it was still starting, reading the job or writing the plan.
    tally = {"kill_in_run": 0, "kill_before_run": 0, "term_in_run": 0, "term_before_run": 0,
             "images_written_by_killed_runs": 0, "finished_before_signal": 0, "rounds": 0, "processes": 0}

    def finish_round(final_run):
        nonlocal failures
        if final_run:
            last = subprocess.run([args.sambatch, "run", job], env=env, capture_output=True, text=True)
            tally["processes"] += 1
            if last.returncode not in (0, 2):
                failures.append(f"round {tally['rounds']}: the last run failed ({last.returncode}): {last.stderr}")
        got = dump(database)
        if got != expected:
            differing = [i for i, (a, b) in enumerate(zip(got, expected)) if a != b]
            first = differing[0] if differing else min(len(got), len(expected))
            failures.append(
                f"round {tally['rounds']}: {len(got)} rows, reference {len(expected)}; first difference at row {first}: "
                f"{got[first] if first < len(got) else None} vs {expected[first] if first < len(expected) else None}")
        # A row stays open only when its process was killed -9 and no later run took it over.
        open_runs = [pid for (pid,) in query(database, "SELECT pid FROM runs WHERE ended_at IS NULL")]
        if any(pid not in killed for pid in open_runs):
            failures.append(f"round {tally['rounds']}: runs rows left open by processes not killed -9: {open_runs}")
        again = subprocess.run([args.sambatch, "run", job], env=env, capture_output=True, text=True)
        if "Nothing to do" not in again.stdout:
            failures.append(f"round {tally['rounds']}: a finished job run again did something: {again.stdout}")
        runs = query(database, "SELECT COUNT(*) FROM runs")[0][0]
        print(f"round {tally['rounds']}: {'same' if got == expected else 'DIFFERENT'} rows, {runs} runs", flush=True)
        tally["rounds"] += 1
        remove_database(database)

    # A signal that finds the process already finished (the job's last images) is sent again later.
    n = 0
    while signals and n < 3 * (args.kills + args.terms):
        sig = signals.pop(0)
        n += 1
        process = subprocess.Popen([args.sambatch, "run", job], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        tally["processes"] += 1
        lines, started = [], threading.Event()

        def drain(stream=process.stderr, lines=lines, started=started):
            for line in stream:
                lines.append(line)
                if " to do, " in line:
                    started.set()
            started.set()

        reader = threading.Thread(target=drain)
        reader.start()
        # Startup takes 0.3-3 s on a loaded machine: timed from the process's start, most signals
        # would land before the run. So a fraction lands at any moment of the startup (reading
        # the job, writing the plan), the rest at a random moment after the run began processing.
        if rng.random() < args.early:
            time.sleep(rng.uniform(0, args.max_after))
        else:
            started.wait(timeout=120)
            time.sleep(rng.uniform(0, args.max_after))
        landed = process.poll() is None
        if landed:
            process.send_signal(sig)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            failures.append(f"signal {n}: the process did not stop within 120 s after {sig.name}")
        reader.join()
        stderr = "".join(lines)
        rc = process.returncode
        own = query(database, "SELECT ended_at, end_reason, images_done + images_failed FROM runs WHERE pid = ?"
                    " ORDER BY id DESC LIMIT 1", (process.pid,))
        phase = "in_run" if own else "before_run"
        if not landed:
            tally["finished_before_signal"] += 1
            signals.append(sig)
            if rc not in (0, 2):
                failures.append(f"signal {n}: a run failed ({rc}): {stderr[-500:]}")
        elif sig == signal.SIGKILL:
            killed.add(process.pid)
            if rc != -signal.SIGKILL and rc not in (0, 2):
                failures.append(f"signal {n}: kill -9 gave exit status {rc}: {stderr[-500:]}")
            tally[f"kill_{phase}"] += 1
            tally["images_written_by_killed_runs"] += own[0][2] if own else 0
        else:
            tally[f"term_{phase}"] += 1
            rows = own
            if rc == 143:
                if not rows or rows[0][0] is None or rows[0][1] != "interrupted (SIGTERM)":
                    failures.append(f"signal {n}: SIGTERM'd run (pid {process.pid}) left its row as {rows}")
            elif rc == -signal.SIGTERM:
                # Before the handlers were installed: the process must not have recorded a run.
                if rows:
                    failures.append(f"signal {n}: SIGTERM before the handlers, yet a run row: {rows}")
            elif rc not in (0, 2):
                failures.append(f"signal {n}: SIGTERM gave exit status {rc}: {stderr[-500:]}")
        if pending(database) == 0:
            finish_round(final_run=False)
    finish_round(final_run=True)

    if signals:
        failures.append(f"{len(signals)} signals never found a running process")
    print(json.dumps(tally))
    if failures:
        print(f"{len(failures)} failures:")
        for f in failures[:50]:
            print("  " + f)
        sys.exit(1)
    print(f"OK: {args.kills} kill -9 and {args.terms} SIGTERM, every round equal to the uninterrupted run")


if __name__ == "__main__":
    main()
