#!/usr/bin/env bash
# `make demo`: create a demo lake (once), serve it, upload a small demo dataset, keep serving.
# LAKE, PORT and PASSWORD may be overridden; DEMO_ONESHOT=1 stops the server after the upload.
set -euo pipefail

LAKE=${LAKE:-demo-lake}
PORT=${PORT:-8080}
PASSWORD=${PASSWORD:-demo-password}
URL="http://127.0.0.1:$PORT"

if [ ! -f "$LAKE/lake.json" ]; then
  lacus init "$LAKE" --root-password "$PASSWORD"
fi

lacus serve --lake "$LAKE" --port "$PORT" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "$URL/ping" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "demo: the server did not start" >&2; exit 1; }
  sleep 0.1
done

export LACUS_URL="$URL" LACUS_ACCOUNT=root LACUS_PASSWORD="$PASSWORD"
if ! lacus ls 'demo:*' --limit 1 >/dev/null 2>&1; then
  lacus scope add demo
  input="$LAKE/demo-input"
  python3 - "$input" <<'PY'
import math, pathlib, struct, sys
root = pathlib.Path(sys.argv[1])
strain = root / "virgo_rehearsal"
strain.mkdir(parents=True, exist_ok=True)
for chunk in range(10):
    samples = [1e-21 * math.sin(2 * math.pi * 60 * (chunk + i / 4096)) for i in range(4096)]
    (strain / f"V1_strain_{1264000000 + chunk}.bin").write_bytes(struct.pack("<4096d", *samples))
PY
  lacus upload --rse ALPHA_DISK --scope demo "$input/virgo_rehearsal"
  lacus meta set demo:virgo_rehearsal detector=V1 sample_rate=4096
  # Keep it on every DISK RSE: ALPHA has it already (ok locks), BETA gets transfer requests.
  lacus rule add demo:virgo_rehearsal --rses 'qos=DISK' --copies 2 --comment 'demo: two disks'
fi

cat <<TXT

Lacus demo lake is being served at $URL
Log in:     lacus login --url $URL --account root --password $PASSWORD
   (or)     export LACUS_URL=$URL LACUS_ACCOUNT=root LACUS_PASSWORD=$PASSWORD
Try:        lacus ls 'demo:*'
            lacus files demo:virgo_rehearsal
            lacus download --dir /tmp/demo-download demo:virgo_rehearsal
            lacus rule list --did demo:virgo_rehearsal
Stop with Ctrl-C.
TXT
lacus ls 'demo:*'
lacus rule list --did demo:virgo_rehearsal
if [ "${DEMO_ONESHOT:-0}" = "1" ]; then exit 0; fi
wait $server
