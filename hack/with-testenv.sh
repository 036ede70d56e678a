#!/usr/bin/env bash
# Runs a command with one test control plane (target/testenv/testenv) running for its whole duration:
#   hack/with-testenv.sh cargo test ...
# The command sees EIAM_TESTENV_KUBECONFIG (the admin kubeconfig; user.kubeconfig and testenv.json sit next to
# it) and EIAM_TESTENV_DIR (that directory). The control plane is stopped when the command ends, fails or is interrupted;
# it also stops by itself if this script dies (--parent-pid).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${EIAM_TESTENV_BIN:-target/testenv/testenv}
[[ -x $bin ]] || { echo "with-testenv: $bin missing: run 'make testenv'" >&2; exit 1; }
dir=$PWD/target/testenv/run-$$
mkdir -p "$dir"
log=$dir/control-plane.log

"$bin" --out-dir "$dir" --crds crds --log-file "$log" --parent-pid $$ >"$dir/stdout" 2>"$dir/stderr" &
pid=$!
stop() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  # Keep the last run's log for post-mortems; the rest of the directory is gone with the control plane.
  mv -f "$log" target/testenv/control-plane.log 2>/dev/null || true
  rm -rf "$dir"
  echo "with-testenv: control plane stopped (its log: target/testenv/control-plane.log)"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in $(seq 1200); do  # 120 s
  grep -q '^testenv ready' "$dir/stdout" 2>/dev/null && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "with-testenv: the control plane exited before it was ready:" >&2
    cat "$dir/stderr" >&2; tail -n 40 "$log" >&2
    exit 1
  fi
  sleep 0.1
done
if ! grep -q '^testenv ready' "$dir/stdout"; then
  echo "with-testenv: the control plane was not ready after 120s:" >&2
  cat "$dir/stderr" >&2; tail -n 40 "$log" >&2
  exit 1
fi
echo "with-testenv: $(grep '^testenv ready' "$dir/stdout")"

export EIAM_TESTENV_KUBECONFIG=$dir/kubeconfig EIAM_TESTENV_DIR=$dir
set +e
"$@"
status=$?
set -e
exit $status
