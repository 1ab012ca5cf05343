#!/bin/sh
# A fake `petl` for the sweep tests: it honours the argv contract of `petl run` and
# `petl cache build` (parses --method/--task/--seed/--protocol/--out/--threads, appends its
# record to <out>/results.jsonl like petl run) without training anything. Its threads are
# --threads, else OMP_NUM_THREADS (which the farm sets to the rank's threads per job).
# Behaviour by method name prefix (`run`) or task name prefix (`cache build`):
#   run:   ok*        ok record after $FAKE_SLEEP seconds (default 0.05); accuracy 50 + seed % 10
#          fail*      appends a failed record like petl run, prints an error, exits 2
#          crash*     kills itself with SIGKILL (what the out-of-memory killer does)
#          slow*      sleeps 600 s (for time limits)
#          sigparent* the first time (per $FAKE_STATE_DIR), when run by rank
#                     $FAKE_SIGNAL_RANK (default: any): SIGUSR2 to its parent (the MPI rank), then
#                     sleeps 600 s; otherwise behaves like ok
#          anything else: like ok
#   cache: badcache*  exits 3 with an error; otherwise writes <out>/done
# Every start appends "<PETL_SWEEP_JOB_KEY> <run|cache> start" to $FAKE_RUNS_LOG (when set), and
# "<key> <run|cache> end" when it finishes normally.
#   bundle: runs each --job's arguments as `run` above, one after another (PETL_SWEEP_JOB_KEY = the
#          job's --out folder name), exits 1 when one failed; a job killed by a signal takes the
#          bundle down with that signal (as in one real `petl bundle` process).
if [ "$1" = bundle ]; then
  shift
  exec /usr/bin/python3 -c '
import json, os, subprocess, sys
me, args = sys.argv[1], sys.argv[2:]
threads, jobs, i = "", [], 0
while i < len(args):
    a = args[i]
    if a in ("--threads", "--device", "--job"):
        if a == "--threads":
            threads = args[i + 1]
        if a == "--job":
            jobs.append(json.loads(args[i + 1]))
        i += 2
    elif a == "--no-progress":
        i += 1
    else:
        sys.exit("fake petl bundle: unknown argument " + a)
failed = False
for j in jobs:
    j = j[1:] if j and j[0] == "run" else j
    if threads:
        j = j + ["--threads", threads]
    env = dict(os.environ, PETL_SWEEP_JOB_KEY=os.path.basename(j[j.index("--out") + 1]))
    r = subprocess.run([me, "run"] + j, env=env)
    if r.returncode < 0:
        os.kill(os.getpid(), -r.returncode)
    failed |= r.returncode != 0
sys.exit(1 if failed else 0)
' "$0" "$@"
fi
kind=""
case "$1" in
  run) kind=run; shift ;;
  cache) [ "$2" = build ] || { echo "fake petl: expected 'cache build'" >&2; exit 64; }; kind=cache; shift 2 ;;
  *) echo "fake petl: unknown command '$1'" >&2; exit 64 ;;
esac
method=""; task=""; seed=-1; protocol=best_of_10; out=""; threads=""; resume=0; sets=""
while [ $# -gt 0 ]; do
  case "$1" in
    --method) method="$2"; shift 2 ;;
    --task) task="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --protocol) protocol="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --set) sets="$sets $2"; shift 2 ;;
    --resume) resume=1; shift ;;
    --no-progress) shift ;;
    --data-root|--backbone|--arch|--recipe|--epochs|--batch-size|--feature-cache|--cache-dtype|--taps|--splits|--dtype|--normalisation|--device)
      [ $# -ge 2 ] || { echo "fake petl: $1 needs a value" >&2; exit 64; }; shift 2 ;;
    *) echo "fake petl: unknown argument '$1'" >&2; exit 64 ;;
  esac
done
[ -n "$out" ] || { echo "fake petl: no --out" >&2; exit 64; }
[ -n "$threads" ] || threads="$OMP_NUM_THREADS"
case "$threads" in ''|*[!0-9]*) echo "fake petl: --threads '$threads' is not a number" >&2; exit 64 ;; esac
[ "$threads" = "$OMP_NUM_THREADS" ] || { echo "fake petl: OMP_NUM_THREADS $OMP_NUM_THREADS != --threads $threads" >&2; exit 65; }
key="${PETL_SWEEP_JOB_KEY:-nokey}"
[ -n "$FAKE_RUNS_LOG" ] && echo "$key $kind start" >> "$FAKE_RUNS_LOG"
mkdir -p "$out"
echo "fake petl $kind: method=$method task=$task seed=$seed threads=$threads sets=$sets"

if [ "$kind" = cache ]; then
  case "$task" in
    badcache*) echo "fake petl: error: cannot read images of task $task (on purpose)" >&2; exit 3 ;;
  esac
  sleep "${FAKE_SLEEP:-0.05}"
  echo ok > "$out/done"
  [ -n "$FAKE_RUNS_LOG" ] && echo "$key $kind end" >> "$FAKE_RUNS_LOG"
  exit 0
fi

case "$method" in
  fail*)
    msg="training diverged: loss nan at epoch 1 (on purpose, $method/$task)"
    echo "petl run: error: $msg" >&2
    printf '{"schema":"petl.result","schema_version":1,"status":"failed","error":"%s","method":"%s","task":"%s","seed":%s,"protocol":"%s"}\n' \
      "$msg" "$method" "$task" "$seed" "$protocol" >> "$out/results.jsonl"
    exit 2 ;;
  crash*)
    echo "allocating a lot of memory ..."
    kill -9 $$ ;;
  slow*)
    echo "this takes forever"
    sleep 600 ;;
  sigparent*)
    if [ ! -e "${FAKE_STATE_DIR:-/tmp}/sigparent.sent" ] && [ "${FAKE_SIGNAL_RANK:-$PETL_SWEEP_RANK}" = "$PETL_SWEEP_RANK" ]; then
      touch "${FAKE_STATE_DIR:-/tmp}/sigparent.sent"
      echo "sending SIGUSR2 to my parent $PPID"
      kill -USR2 "$PPID"
      sleep 600
    fi ;;
esac
sleep "${FAKE_SLEEP:-0.05}"
acc=$((50 + seed % 10))
printf '{"schema":"petl.result","schema_version":1,"status":"ok","method":"%s","task":"%s","seed":%s,"protocol":"%s","accuracy":%s.5,"sets":"%s"}\n' \
  "$method" "$task" "$seed" "$protocol" "$acc" "$sets" >> "$out/results.jsonl"
[ -n "$FAKE_RUNS_LOG" ] && echo "$key $kind end" >> "$FAKE_RUNS_LOG"
echo "record appended to $out/results.jsonl"
exit 0
