#!/usr/bin/env bash
# make demo: the operator end to end on this machine. Starts the test control plane (tests/testenv), the fake EIAM
# and the operator, applies examples/demo/, waits until the ApplicationClientSecret is Ready, prints its status
# and the published Secret (secret values masked), then stops everything.
#   KEEP=1 hack/demo.sh   leave everything running and print the KUBECONFIG to use
#   hack/demo.sh stop     stop a demo left running with KEEP=1
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$PWD/target/demo
kubectl=${KUBECTL:-$PWD/target/tools/kubectl}
testenv=${EIAM_TESTENV_BIN:-$PWD/target/testenv/testenv}
fake=$PWD/target/debug/fake-eiam
operator=$PWD/target/debug/eiam-operator
keep=${KEEP:-}
[[ $keep == 0 ]] && keep=

say() { printf '\n== %s\n' "$*"; }

stop_all() {
  [[ -f $dir/pids ]] || return 0
  # Reverse order: operator, fake, control plane.
  for pid in $(tac "$dir/pids"); do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $(tac "$dir/pids"); do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$dir/pids"
}

if [[ ${1:-} == stop ]]; then
  stop_all
  echo "demo stopped"
  exit 0
fi

# A demo left running with KEEP=1 would hold the same directory.
stop_all
rm -rf "$dir"
mkdir -p "$dir"

# start NAME COMMAND...: runs COMMAND in the background with its output in $dir/NAME.{out,err}. With KEEP=1 it
# gets its own session so it survives make; without, the trap below stops it.
start() {
  local name=$1; shift
  if [[ -n $keep ]]; then
    setsid "$@" >"$dir/$name.out" 2>"$dir/$name.err" </dev/null &
  else
    "$@" >"$dir/$name.out" 2>"$dir/$name.err" </dev/null &
  fi
  echo $! >>"$dir/pids"
}

# wait_line NAME PATTERN SECONDS: waits for PATTERN in $dir/NAME.out, failing if the process exits first.
wait_line() {
  local name=$1 pattern=$2 seconds=$3 pid
  pid=$(tail -n 1 "$dir/pids")
  for _ in $(seq $((seconds * 10))); do
    grep -q -- "$pattern" "$dir/$name.out" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "demo: $name exited before printing '$pattern':" >&2
      cat "$dir/$name.err" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "demo: $name did not print '$pattern' within ${seconds}s:" >&2
  cat "$dir/$name.err" >&2
  return 1
}

if [[ -z $keep ]]; then trap stop_all EXIT; fi
trap 'exit 130' INT
trap 'exit 143' TERM

for tool in "$testenv" "$kubectl"; do
  [[ -x $tool ]] || { echo "demo: $tool missing: run 'make demo' (it builds it)" >&2; exit 1; }
done

say "control plane (etcd + kube-apiserver + controllers, tests/testenv)"
parent=(--parent-pid $$)
[[ -n $keep ]] && parent=()
start testenv "$testenv" --out-dir "$dir" --crds crds --log-file "$dir/control-plane.log" "${parent[@]}"
wait_line testenv '^testenv ready' 120
cat "$dir/testenv.out"
export KUBECONFIG=$dir/kubeconfig

have_fake=; have_operator=
[[ -x $fake ]] && have_fake=1
[[ -x $operator ]] && have_operator=1

fake_url=
if [[ -n $have_fake ]]; then
  say "fake EIAM (target/debug/fake-eiam)"
  start fake-eiam "$fake" --access-key LTAIdemoAccessKey:demo-access-key-secret \
    --application idaas_demo/app_demo/client_demo
  wait_line fake-eiam 'fake-eiam listening on ' 30
  fake_url=$(sed -n 's/^fake-eiam listening on //p' "$dir/fake-eiam.out" | head -n 1)
  echo "fake-eiam at $fake_url (application idaas_demo/app_demo, AccessKey LTAIdemoAccessKey)"
fi

if [[ -n $have_operator ]]; then
  say "operator (target/debug/eiam-operator)"
  start operator "$operator" --leader-election=false --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 \
    --log-format text
  echo "eiam-operator started; its log: $dir/operator.err"
fi

say "kubectl apply examples/demo/"
for file in examples/demo/*.yaml; do
  if grep -q '\${FAKE_EIAM_URL}' "$file"; then
    if [[ -z $fake_url ]]; then
      echo "skipping $file: fake-eiam has not been built"
      continue
    fi
    sed "s|\${FAKE_EIAM_URL}|$fake_url|g" "$file" | "$kubectl" apply -f -
  else
    "$kubectl" apply -f "$file"
  fi
done

if [[ -z $have_fake || -z $have_operator ]]; then
  say "stopping here"
  [[ -z $have_fake ]] && echo "target/debug/fake-eiam does not exist: the fake EIAM has not landed or not been built."
  [[ -z $have_operator ]] && echo "target/debug/eiam-operator does not exist: the reconciler has not landed or not been built."
  echo "The resources were applied, but nothing reconciles them, so the demo cannot show a Ready secret."
  "$kubectl" get -n eiam-demo applicationclientsecrets,eiamproviders,secrets
  exit 0
fi

say "waiting for ApplicationClientSecret eiam-demo/orders-api to be Ready"
start_wait=$(date +%s)
if ! "$kubectl" wait -n eiam-demo applicationclientsecret/orders-api --for=condition=Ready --timeout=60s; then
  echo "demo: orders-api did not become Ready; its status and the operator's last log lines:" >&2
  "$kubectl" get -n eiam-demo applicationclientsecret/orders-api -o yaml >&2 || true
  tail -n 30 "$dir/operator.err" >&2
  exit 1
fi
echo "Ready after $(( $(date +%s) - start_wait ))s"

say "kubectl get eiamproviders,applicationclientsecrets -n eiam-demo -o wide"
"$kubectl" get -n eiam-demo eiamproviders,applicationclientsecrets -o wide

say "status of eiam-demo/orders-api"
"$kubectl" get -n eiam-demo applicationclientsecret/orders-api -o yaml | sed -n '/^status:/,$p'

say "Secret eiam-demo/orders-api-eiam (values other than clientId masked)"
"$kubectl" get -n eiam-demo secret/orders-api-eiam -o go-template='name: {{.metadata.name}}
labels:{{range $k, $v := .metadata.labels}}
  {{$k}}: {{$v}}{{end}}
annotations:{{range $k, $v := .metadata.annotations}}
  {{$k}}: {{$v}}{{end}}
ownerReferences:{{range .metadata.ownerReferences}}
  {{.kind}}/{{.name}} (controller: {{.controller}}){{end}}
data:{{range $k, $v := .data}}
  {{$k}}: {{if eq $k "clientId"}}{{base64decode $v}}{{else}}******** (masked, {{len (base64decode $v)}} characters){{end}}{{end}}
'

say "what the fake EIAM saw"
if command -v python3 >/dev/null && command -v curl >/dev/null; then
  curl -s "$fake_url/_fake/calls" | python3 -c '
import collections, json, sys
calls = json.load(sys.stdin)
calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
counts = collections.Counter(c.get("action", "?") for c in calls)
print("EIAM calls:", ", ".join(f"{a} x{n}" for a, n in sorted(counts.items())) or "none")'
else
  echo "(curl and python3 needed to summarise $fake_url/_fake/calls)"
fi

if [[ -n $keep ]]; then
  say "the demo keeps running (KEEP=1)"
  cat <<MSG
  export KUBECONFIG=$KUBECONFIG
  $kubectl get -n eiam-demo applicationclientsecrets,secrets
  fake EIAM: $fake_url  (admin API: $fake_url/_fake/state, $fake_url/_fake/calls)
  logs: $dir/operator.err, $dir/fake-eiam.err, $dir/control-plane.log
Stop it with: make demo-stop
MSG
else
  say "stopping the demo (KEEP=1 leaves it running)"
fi
