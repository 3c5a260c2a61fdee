#!/bin/sh
# Quick start: install what is missing, build, create demo keys on first
# start, run sectorcastd on conf/sectorcast.conf with the bundled plugins,
# and show the verified updates as a subscribing agency (motie) sees them:
# one readable line per message (sectorcast-sub --format text), first the
# current state (the snapshot, under its heading), then live changes as
# they arrive. A small driver edits a demo register file every few seconds
# so that live updates keep flowing. Ctrl-C stops everything.
set -eu
cd "$(dirname "$0")/.."
./tools/deps.sh
mkdir -p var
printf 'demo: building (scons) ... '
if scons -Q -j"$(nproc 2>/dev/null || echo 2)" >var/build.log 2>&1; then
    echo "done"
else
    echo "FAILED (var/build.log)"; tail -n 40 var/build.log >&2; exit 1
fi

bin=build/bin
keys=conf/keys
mkdir -p "$keys" var
chmod 700 "$keys"
keygen() { # args: one command, its lines kept in var/keygen.log
    $bin/sectorcast-keygen "$@" >>var/keygen.log 2>&1 ||
        { cat var/keygen.log >&2; exit 1; }
}
if [ ! -f "$keys/signing.jwk" ] || [ ! -f "$keys/doe.secret" ]; then
    echo "demo: creating the demo keys in $keys/ (first start; var/keygen.log)"
fi
if [ ! -f "$keys/broker.secret" ]; then
    keygen init "$keys"                  # the names of docs/keys.md
elif [ ! -f "$keys/signing.jwk" ]; then  # keys of an older demo
    keygen sign "$keys/signing.jwk"
fi
[ -f "$keys/doe.secret" ] || keygen curve "$keys/doe"

$bin/sectorcastd --check -c conf/sectorcast.conf
$bin/sectorcastd -c conf/sectorcast.conf 2>var/sectorcastd.log &
broker=$!
live=conf/registers/energy/demo-live.json
driver=""
cleanup() { # each step whatever the last did: Ctrl-C (or a TERM to the
    # process group) has often stopped the broker and the driver already
    trap - INT TERM EXIT
    set +e
    [ -n "$driver" ] && kill "$driver" 2>/dev/null
    kill "$broker" 2>/dev/null
    wait "$broker" 2>/dev/null
    rm -f "$live"
    echo "demo stopped; broker log: var/sectorcastd.log" >&2
}
trap cleanup INT TERM EXIT

# wait (bounded) until the broker listens
i=0
until grep -q "publishing on" var/sectorcastd.log 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$broker" 2>/dev/null; then
        cat var/sectorcastd.log >&2; exit 1
    fi
    sleep 0.1
done
# let the three plugins read their registers first (bounded: 10 s), so
# that the snapshot holds the demo's state and "live" means changes
i=0
while [ "$(grep -c 'entries loaded' var/sectorcastd.log 2>/dev/null)" -lt 3 ] &&
      [ $i -lt 100 ]; do
    i=$((i + 1)); sleep 0.1
done

sub="$bin/sectorcast-sub -e tcp://127.0.0.1:7601 -s tcp://127.0.0.1:7602 -j $keys/jwks.json -k $keys/broker.public -c $keys/motie --snapshot"
subtrees="energy. semis. ai. defense. shipbuilding."
cat >&2 <<EOF
demo: sectorcastd is running (conf/sectorcast.conf, log: var/sectorcastd.log)
demo: agency 'motie' subscribes to $subtrees
demo: a line per message: local time, channel #seq, kind, key, then a task's
      status and title, a standard's stage and title, an alert's severity,
      event and headline. The same as JSON lines (the signed envelopes):
        $sub $subtrees
demo: Ctrl-C stops the demo.

EOF

# demo driver: one LNG task whose status and progress change every 4 s
(
    n=0
    set -- planned in-progress in-progress at-risk in-progress completed
    while :; do
        n=$((n + 1)); k=$(( (n - 1) % 6 + 1 ))
        eval st=\${$k}
        tmp="$live.tmp"
        cat >"$tmp" <<JSON
{"format": 1, "description": "written by tools/demo.sh; removed when the demo stops",
 "tasks": [{"id": "KUS-EN-LNG-901", "subsector": "lng",
  "title": "Demo: LNG cargo early-warning drill (update $n)",
  "track": "supply-chain-early-warning", "status": "$st",
  "owners": {"kr": ["Korea Gas Corporation (KOGAS)"], "us": ["U.S. Department of Energy, Office of Fossil Energy and Carbon Management"]},
  "start": "2026-01-15",
  "milestones": [{"title": "Drill round $n", "due": "2026-12-31", "status": "pending"}]}]}
JSON
        mv "$tmp" "$live"
        sleep 4
    done
) &
driver=$!

# shellcheck disable=SC2086
$sub --format text $subtrees
