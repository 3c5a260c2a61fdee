#!/bin/sh
# Quick start: install what is missing, build, create demo keys on first
# start, run sectorcastd on conf/sectorcast.conf with the bundled plugins,
# and show the verified updates as a subscribing agency (motie) sees them.
# A small driver edits a demo register file every few seconds so that live
# updates keep flowing. Ctrl-C stops everything.
set -eu
cd "$(dirname "$0")/.."
./tools/deps.sh
scons -Q -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

bin=build/bin
keys=conf/keys
mkdir -p "$keys" var
chmod 700 "$keys"
[ -f "$keys/kus-2026a.jwk" ] || $bin/sectorcast-keygen sign "$keys/kus-2026a.jwk"
for who in broker motie doe; do
    [ -f "$keys/$who.secret" ] || $bin/sectorcast-keygen curve "$keys/$who"
done

$bin/sectorcastd --check -c conf/sectorcast.conf
$bin/sectorcastd -c conf/sectorcast.conf 2>var/sectorcastd.log &
broker=$!
live=conf/registers/energy/demo-live.json
driver=""
cleanup() {
    trap - INT TERM EXIT
    [ -n "$driver" ] && kill "$driver" 2>/dev/null
    kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null
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
echo "sectorcastd running (log: var/sectorcastd.log); agency 'motie' subscribes to energy. semis. ai. defense. shipbuilding." >&2

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

$bin/sectorcast-sub -e tcp://127.0.0.1:7601 -s tcp://127.0.0.1:7602 \
    -j "$keys/jwks.json" -k "$keys/broker.public" -c "$keys/motie" \
    --snapshot energy. semis. ai. defense. shipbuilding.
