#!/usr/bin/env bash
# Crash test of nerve train's run lifecycle: a small training run is killed (SIGKILL) and
# interrupted (SIGINT, once and twice) at random moments, then resumed to the end; the disk
# fills up and the run directory turns read-only under it. Every case checks that
#   - every checkpoint left behind loads (nerve eval),
#   - the log never runs ahead of the checkpoint (after an interrupt or an I/O error they
#     agree exactly; after SIGKILL the log may lag by the one epoch whose checkpoint was
#     renamed into place just before the kill),
#   - the resume (or, when nothing was saved yet, a fresh run) goes on to the last epoch,
#     with log.csv and checkpoint at the same last epoch, no .tmp file left, and tensors
#     (weights, optimiser state, best weights) bit-identical to an uninterrupted run,
#   - a full disk / read-only directory stops the run with a message naming the file and
#     the system's reason, and the previous checkpoint stays whole.
#
# usage: tests/crash/crash_test.sh [--brief] [--kills N] [--sigints N] [--double N]
#                                  [--no-disk] [--seed S] [--keep]
#   --brief   3 kills, 3 SIGINTs, 1 double SIGINT on a smaller run, no disk cases (what
#             make test runs, through tests/test_runs.c)
#   default   20 kills, 20 SIGINTs, 5 double SIGINTs, and the disk cases when running as
#             root where mount works (a 'tmpfs' of a few hundred KiB for the full disk; a
#             read-only bind mount for the read-only directory); otherwise they are
#             reported as skipped.
# NERVE names the binary (default build/nerve). Exit status 0 when every check passed.
set -u

NERVE=${NERVE:-build/nerve}
case $NERVE in /*) ;; *) NERVE=$PWD/$NERVE ;; esac
KILLS=20 SIGINTS=20 DOUBLE=5 DISK=1 SEED=$$ KEEP=0 EPOCHS=4 SAMPLES=8000 HIDDEN=192
while [ $# -gt 0 ]; do
    case $1 in
    --brief) KILLS=3 SIGINTS=3 DOUBLE=1 DISK=0 EPOCHS=3 SAMPLES=5000 HIDDEN=64 ;;
    --kills) KILLS=$2; shift ;;
    --sigints) SIGINTS=$2; shift ;;
    --double) DOUBLE=$2; shift ;;
    --no-disk) DISK=0 ;;
    --seed) SEED=$2; shift ;;
    --keep) KEEP=1 ;;
    *) echo "usage: $0 [--brief] [--kills N] [--sigints N] [--double N] [--no-disk] [--seed S] [--keep]" >&2
       exit 2 ;;
    esac
    shift
done
[ -x "$NERVE" ] || { echo "crash test: no nerve binary at $NERVE (make first)" >&2; exit 2; }
RANDOM=$SEED
WORK=$(mktemp -d /tmp/nerve-crash.XXXXXX)
MOUNTS=()
cleanup()
{
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    [ "$KEEP" = 1 ] && echo "crash test: files kept in $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap "exit 1" INT TERM
cd "$WORK" || exit 2

FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }

# ---- the problem: 20 features, 3 classes, an MLP with Adam and dropout -------------------
gen() { # gen FILE N SEED
    awk -v n="$2" -v s="$3" 'BEGIN {
        srand(s);
        for (k = 0; k < 20; k++) printf "f%d,", k; print "label";
        for (i = 0; i < n; i++) {
            c = i % 3;
            for (k = 0; k < 20; k++) {
                u1 = rand(); u2 = rand(); if (u1 < 1e-9) u1 = 1e-9;
                z = sqrt(-2 * log(u1)) * cos(6.283185307 * u2);
                printf "%.4f,", (k % 3 == c ? 1.0 : 0.0) + z;
            }
            print c;
        }
    }' > "$1"
}
gen train.csv "$SAMPLES" 1
gen test.csv 300 2
cat > crash.cfg <<EOF
[net]
inputs=20
batch=16
optimizer=adam
learning_rate=0.002
epochs=$EPOCHS
seed=11
validation=0.2
train_csv=train.csv
test_csv=test.csv

[connected]
output=$HIDDEN
activation=relu

[dropout]
probability=0.2

[connected]
output=$HIDDEN
activation=relu

[connected]
output=3

[softmax]
EOF

train() { "$NERVE" train crash.cfg --threads 1 --quiet "$@"; }
# In the background, with exec: $! is then nerve itself, not a subshell around it.
start() { exec "$NERVE" train crash.cfg --threads 1 --quiet "$@"; }

# The JSON header of a safetensors file, and one metadata value from it.
header() { local n; n=$(od -An -t u8 -N8 "$1" | tr -d ' '); head -c $((8 + n)) "$1" | tail -c "$n"; }
meta() { header "$1" | grep -o "\"$2\":\"[^\"]*\"" | head -1 | sed 's/.*:"\(.*\)"/\1/'; }
# A checksum of the tensors (everything after the header).
tensors() { local n; n=$(od -An -t u8 -N8 "$1" | tr -d ' '); tail -c +$((9 + n)) "$1" | cksum; }
log_epoch() { [ -f "$1" ] && tail -n 1 "$1" | cut -d, -f1 | grep -E '^[0-9]+$' || echo 0; }

# Random moments, on two clocks in turn (odd trials, even trials):
#  - wall time, uniform over the reference run's duration: catches the checkpoint writes
#    and their fsync, which take much of the wall time of a small run, but drifts early
#    when the machine is busier than during the reference;
#  - the run's own CPU time (user + system, in clock ticks as /proc/PID/stat counts them),
#    uniform over the reference's: covers the computation evenly however loaded the
#    machine is (waiting for the disk is not on that clock).
HZ=$(getconf CLK_TCK)
wait_cpu() { # PID TICKS: returns once the process has used TICKS of CPU, or has exited
    local f
    while kill -0 "$1" 2> /dev/null; do
        read -r -a f < "/proc/$1/stat" 2> /dev/null || return
        [ $((f[13] + f[14])) -ge "$2" ] && return
        sleep 0.005
    done
}
# Draws trial I's moment into AT (a description).
draw_moment() { # I
    if [ $(($1 % 2)) = 1 ]; then
        AT="$(awk -v r="$RANDOM" -v t="$WALL" 'BEGIN { printf "%.3f", t * r / 32768 }')s wall time"
    else
        AT="$((RANDOM * CPU_TICKS / 32768)) CPU ticks"
    fi
}
wait_moment() { # PID
    case $AT in
    *wall\ time) sleep "${AT%s wall time}" ;;
    *) wait_cpu "$1" "${AT% CPU ticks}" ;;
    esac
}

# ---- the uninterrupted reference ------------------------------------------------------------
TIMEFORMAT='%R %U %S'
{ time train --out ref > ref.out 2>&1; } 2> ref.time
[ -f ref/model.safetensors ] || { cat ref.out; echo "crash test: the reference run failed"; exit 1; }
read -r WALL user sys < ref.time
CPU_TICKS=$(awk -v u="$user" -v s="$sys" -v hz="$HZ" 'BEGIN { printf "%d", (u + s) * hz }')
REF=$(tensors ref/model.safetensors)
CKPT_BYTES=$(stat -c %s ref/model.safetensors)
echo "crash test: seed $SEED; reference run $EPOCHS epochs of $((SAMPLES * 4 / 5)) samples: ${WALL}s, $CPU_TICKS CPU ticks (1/$HZ s); checkpoint $CKPT_BYTES bytes"

# Checks a run directory after the process died or stopped: the checkpoint (if any) loads
# and the log is not ahead of it (at most `lag` epochs behind). Sets LEFT to the checkpoint's
# epoch and batch ("none" when there is none).
check_left_behind() { # DIR LAG CASE
    local d=$1 lag=$2 what=$3 ck le
    if [ ! -f "$d/model.safetensors" ]; then
        [ "$(log_epoch "$d/log.csv")" = 0 ] || fail "$what: a log without a checkpoint"
        LEFT=none
        return
    fi
    local ev="$WORK/$(echo "$d" | tr / _).eval" # outside d, which may be read-only
    "$NERVE" eval "$d/model.safetensors" --threads 1 > "$ev" 2>&1 ||
        fail "$what: the checkpoint left behind does not load: $(tail -1 "$ev")"
    ck=$(meta "$d/model.safetensors" train.epoch)
    le=$(log_epoch "$d/log.csv")
    if [ "$le" -gt "$ck" ] || [ "$le" -lt $((ck - lag)) ]; then
        fail "$what: log.csv ends at epoch $le, the checkpoint at $ck"
    fi
    LEFT="$ck:$(meta "$d/model.safetensors" train.batch)"
}

# Checks a finished run: last epoch in checkpoint and log, no .tmp, tensors as the reference.
check_finished() { # DIR CASE
    local d=$1 what=$2
    local ck le
    ck=$(meta "$d/model.safetensors" train.epoch)
    le=$(log_epoch "$d/log.csv")
    [ "$ck" = "$EPOCHS" ] || fail "$what: the checkpoint ends at epoch $ck, not $EPOCHS"
    [ "$le" = "$EPOCHS" ] || fail "$what: log.csv ends at epoch $le, not $EPOCHS"
    ls "$d"/*.tmp > /dev/null 2>&1 && fail "$what: temporary files left: $(ls "$d"/*.tmp)"
    [ "$(tensors "$d/model.safetensors")" = "$REF" ] || fail "$what: the tensors differ from the uninterrupted run's"
}

# Goes on from what a run left in DIR: a resume when a checkpoint is there, else a fresh run.
finish() { # DIR CASE
    local d=$1 what=$2
    if [ -f "$d/model.safetensors" ]; then
        train --resume "$d/model.safetensors" > "$d.resume" 2>&1 || {
            fail "$what: the resume failed: $(tail -2 "$d.resume")"
            return
        }
    else
        train --out "$d" --overwrite > "$d.resume" 2>&1 || {
            fail "$what: the fresh rerun failed: $(tail -2 "$d.resume")"
            return
        }
    fi
    check_finished "$d" "$what"
}

# ---- SIGKILL at random moments --------------------------------------------------------------
k_none=0 k_mid=0 k_tmp=0 k_lag=0
for i in $(seq 1 "$KILLS"); do
    d=kill$i
    draw_moment "$i"
    start --out "$d" > "$d.out" 2>&1 &
    pid=$!
    wait_moment "$pid"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    ls "$d"/*.tmp > /dev/null 2>&1 && k_tmp=$((k_tmp + 1))
    check_left_behind "$d" 1 "kill $i (at $AT)"
    left=$LEFT
    case $left in
    none) k_none=$((k_none + 1)) ;;
    *) [ "$(log_epoch "$d/log.csv")" != "${left%%:*}" ] && k_lag=$((k_lag + 1)) ;;
    esac
    finish "$d" "kill $i (at $AT, checkpoint $left)"
    k_mid=$((k_mid + 1))
done
[ "$KILLS" -gt 0 ] && echo "kill -9: $KILLS runs killed ($k_none before the first checkpoint, $k_tmp left a .tmp that the resume removed, $k_lag with the log one epoch behind the checkpoint); all resumed to epoch $EPOCHS"

# ---- SIGINT: finish the step, save the position, print the resume command ------------------
s_mid=0 s_edge=0 s_before=0 s_done=0
for i in $(seq 1 "$SIGINTS"); do
    d=int$i
    draw_moment "$i"
    start --out "$d" > "$d.out" 2>&1 &
    pid=$!
    # not before the handler is in place (until then the shell's background jobs ignore
    # SIGINT, as they do in any non-interactive shell)
    while ! grep -q "^run directory" "$d.out" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
    wait_moment "$pid"
    kill -INT "$pid" 2>/dev/null
    wait "$pid"
    rc=$?
    what="SIGINT $i (at $AT)"
    if [ $rc = 0 ]; then # the run ended before the signal
        s_done=$((s_done + 1))
        check_finished "$d" "$what"
        continue
    fi
    [ $rc = 130 ] || { fail "$what: exit status $rc, not 130: $(tail -2 "$d.out")"; continue; }
    check_left_behind "$d" 0 "$what"
    left=$LEFT
    ls "$d"/*.tmp > /dev/null 2>&1 && fail "$what: temporary files left after an interrupt"
    cmd=$(sed -n 's/^resume with: //p' "$d.out")
    if [ -z "$cmd" ]; then
        # before training: the handler said so, or the signal came before it was installed
        grep -q "^training" "$d.out" && fail "$what: interrupted during training but no resume command printed"
        [ "$left" = none ] || fail "$what: interrupted before training, yet a checkpoint was written"
        s_before=$((s_before + 1))
        finish "$d" "$what"
        continue
    fi
    case $left in *:0) s_edge=$((s_edge + 1)) ;; *) s_mid=$((s_mid + 1)) ;; esac
    eval "$cmd" > "$d.resume" 2>&1 || { fail "$what: '$cmd' failed: $(tail -2 "$d.resume")"; continue; }
    check_finished "$d" "$what (checkpoint $left)"
done
[ "$SIGINTS" -gt 0 ] && echo "SIGINT: $SIGINTS runs interrupted ($s_mid inside an epoch, $s_edge at an epoch boundary, $s_before before training, $s_done already done); each resumed with the printed command to the uninterrupted run's tensors"

# ---- two SIGINTs: exit at once, the last complete checkpoint stays whole ------------------
for i in $(seq 1 "$DOUBLE"); do
    d=double$i
    draw_moment "$i"
    start --out "$d" > "$d.out" 2>&1 &
    pid=$!
    while ! grep -q "^run directory" "$d.out" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
    wait_moment "$pid"
    kill -INT "$pid" 2>/dev/null
    kill -INT "$pid" 2>/dev/null
    wait "$pid"
    rc=$?
    what="double SIGINT $i (at $AT)"
    [ $rc = 130 ] || [ $rc = 0 ] || fail "$what: exit status $rc, not 130"
    check_left_behind "$d" 1 "$what"
    finish "$d" "$what"
done
[ "$DOUBLE" -gt 0 ] && echo "double SIGINT: $DOUBLE runs stopped at once; every checkpoint left loaded and resumed to the end"

# ---- a full disk and a read-only directory --------------------------------------------------
if [ "$DISK" = 1 ]; then
    mkdir -p mnt
    if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=64k tmpfs mnt 2>/dev/null; then
        echo "disk: skipped (needs root and mount)"
    else
        umount mnt
        # Full disk: room for one checkpoint, the log and the plot, not for a second
        # checkpoint beside it (written to model.safetensors.tmp before the rename).
        size=$(( (CKPT_BYTES * 3 / 2 / 4096 + 4) * 4096 ))
        mount -t tmpfs -o size=$size tmpfs mnt && MOUNTS+=("$WORK/mnt")
        train --out mnt/run > full.out 2>&1
        rc=$?
        what="full disk (tmpfs of $size bytes)"
        [ $rc = 1 ] || fail "$what: exit status $rc, not 1"
        grep -q "No space left on device" full.out || fail "$what: the message gives no reason: $(tail -1 full.out)"
        grep -q "mnt/run/model.safetensors" full.out || fail "$what: the message names no file: $(tail -1 full.out)"
        check_left_behind mnt/run 0 "$what"
        left=$LEFT
        ls mnt/run/*.tmp > /dev/null 2>&1 && fail "$what: temporary files left: $(ls mnt/run/*.tmp)"
        echo "full disk: $(grep '^nerve:' full.out | tail -1)"
        echo "  checkpoint left: epoch ${left%%:*}, loads; log.csv ends at epoch $(log_epoch mnt/run/log.csv); no .tmp"
        mkdir -p big && cp -r mnt/run big/ && umount mnt && MOUNTS=()
        finish big/run "$what, resumed on a disk with room"

        # Read-only from the start: refused before any training, with the reason.
        mkdir -p ro && train --out ro/run --epochs 2 > ro1.out 2>&1 || fail "read-only: the first run failed"
        before=$(cksum < ro/run/model.safetensors)
        mount --bind ro ro && MOUNTS+=("$WORK/ro") && mount -o remount,bind,ro ro
        train --resume ro/run/model.safetensors > ro2.out 2>&1
        rc=$?
        [ $rc = 1 ] || fail "read-only directory: exit status $rc, not 1"
        grep -q "cannot write in the run directory ro/run: Read-only file system" ro2.out ||
            fail "read-only directory: $(tail -1 ro2.out)"
        grep -q "^training" ro2.out && fail "read-only directory: training began before the check"
        [ "$(cksum < ro/run/model.safetensors)" = "$before" ] || fail "read-only directory: the checkpoint changed"
        echo "read-only directory: $(grep '^nerve:' ro2.out | tail -1)"
        umount ro && MOUNTS=()

        # Read-only in the middle of a run: the next checkpoint write fails, the last stays.
        mkdir -p ro3 && mount -t tmpfs -o size=16m tmpfs ro3 && MOUNTS+=("$WORK/ro3")
        start --out ro3/run > ro3.out 2>&1 &
        pid=$!
        while [ ! -f ro3/run/log.csv ] && kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
        for _ in $(seq 1 200); do mount -o remount,ro ro3 2>/dev/null && break; sleep 0.005; done
        wait "$pid"
        rc=$?
        what="directory turned read-only during the run"
        [ $rc = 1 ] || fail "$what: exit status $rc, not 1"
        grep -q "Read-only file system" ro3.out || fail "$what: $(tail -1 ro3.out)"
        check_left_behind ro3/run 0 "$what"
        left=$LEFT
        echo "read-only during the run: $(grep '^nerve:' ro3.out | tail -1)"
        echo "  checkpoint left: epoch ${left%%:*}, loads; log.csv ends at epoch $(log_epoch ro3/run/log.csv)"
        mkdir -p big3 && cp -r ro3/run big3/ && umount ro3 && MOUNTS=()
        finish big3/run "$what, resumed on a writable disk"
    fi
fi

if [ "$FAILS" = 0 ]; then
    echo "crash test: PASS"
    exit 0
fi
echo "crash test: $FAILS failures"
exit 1
