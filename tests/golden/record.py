"""Record tests/golden/stream.txt: real messages of a real sectorcastd.

    SC_BUILD=build /usr/bin/python3 tests/golden/record.py [--text]

Runs the energy plugin on the demo register with the demo alert rules,
edits one task twice (status change, then completed), and writes what
the broker signed and journaled, one message per line as sectorcast-sub
--input reads it ("TOPIC JWS"), with one heartbeat as the broker sent it
("TOPIC sc-heartbeat-v1 JSON"); the public keys go to jwks.json. Then
writes the expected outputs: stream.json (each JWS payload decoded here,
byte for byte) and stream.text (sectorcast-sub --format text, TZ=KST-9),
which must be read and checked by a person before it is committed.
With --text, only stream.text is written again (from the stream.txt
there is).
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import zmq  # noqa: E402
from harness import (BIN, Gateway, copy_register, energy_plugin, journal_rows,  # noqa: E402
                     wait_for, zmq_socket)

# the demo's LNG and SMR rules (conf/sectorcast.conf), as libconfig text
RULES = """(
  { indicator = "lng_inventory_days"; op = "<"; threshold = 10; severity = "Severe";
    escalate = ( { threshold = 7; severity = "Extreme"; } );
    clear = 12; urgency = "Expected"; category = "Infra"; },
  { indicator = "smr_forging_lead_time_months"; op = ">"; threshold = 18; severity = "Moderate";
    escalate = ( { threshold = 24; severity = "Severe"; } );
    clear = 15; } )"""


def payload(jws):
    part = jws.split(b".")[1]
    return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))


def main():
    if "--text" not in sys.argv[1:]:
        record()
    text = subprocess.run(
        [os.path.join(BIN, "sectorcast-sub"), "--input", os.path.join(HERE, "stream.txt"),
         "-j", os.path.join(HERE, "jwks.json"), "--format", "text"],
        env=dict(os.environ, TZ="KST-9"), capture_output=True, check=True).stdout
    with open(os.path.join(HERE, "stream.text"), "wb") as f:
        f.write(text)
    sys.stdout.write(text.decode())


def record():
    with Gateway(start=False) as gw:
        reg = copy_register("energy", os.path.join(gw.tmp, "register"))
        p = energy_plugin(reg)
        p["settings"].update(alert_rules="@RULES@",
                             alert_sender="energy.alerts@kus-gateway-seoul")
        gw.plugins = [p]
        gw.write_config()
        with open(gw.config) as f:
            conf = f.read().replace('"@RULES@"', RULES)
        with open(gw.config, "w") as f:
            f.write(conf)
        gw.start()
        wait_for(lambda: len(journal_rows(gw, "energy.lng.alerts")) >= 4, 30, "LNG alerts")

        # a heartbeat, as the broker sends it
        ctx = zmq.Context()
        sub = zmq_socket(ctx, zmq.SUB, gw, "motie")
        sub.setsockopt(zmq.SUBSCRIBE, b"energy.lng.alerts.")
        sub.connect(gw.endpoint)
        heartbeat = None
        deadline = time.monotonic() + 20
        while heartbeat is None and time.monotonic() < deadline:
            if sub.poll(500):
                frames = sub.recv_multipart()
                if len(frames) == 3:
                    heartbeat = frames
        sub.close()
        ctx.term()
        assert heartbeat, "no heartbeat"

        # one task edited twice: a status change, then completed
        path = os.path.join(reg, "tasks.json")
        doc = json.load(open(path))
        task = next(t for t in doc["tasks"] if t["id"] == "KUS-EN-LNG-001")
        channel = "energy.lng.tasks"
        before = len(journal_rows(gw, channel))
        for status, n in (("at-risk", 1), ("completed", 2)):
            task["status"] = status
            with open(path + ".tmp", "w") as f:
                json.dump(doc, f, indent=1)
            os.rename(path + ".tmp", path)
            wait_for(lambda: len(journal_rows(gw, channel)) >= before + n, 20, status)

        picked = []
        tasks = journal_rows(gw, channel)
        picked += [(channel, j) for _, j in tasks[:2]]            # task.created
        picked += [(channel, j) for _, j in tasks[before:]]       # updated, closed
        std = journal_rows(gw, "energy.nuclear.standards")
        picked += [("energy.nuclear.standards", j) for _, j in std[:1]]
        alerts = journal_rows(gw, "energy.lng.alerts")
        picked += [("energy.lng.alerts", j) for _, j in alerts[:4]]  # raised .. cleared

        lines = []
        for i, (ch, jws) in enumerate(picked):
            lines.append(ch.encode() + b". " + jws)
            if i == 2:
                lines.append(b" ".join(heartbeat))
        with open(os.path.join(HERE, "stream.txt"), "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        shutil.copy(gw.jwks, os.path.join(HERE, "jwks.json"))
        with open(os.path.join(HERE, "stream.json"), "wb") as f:
            for _, jws in picked:
                f.write(payload(jws) + b"\n")


if __name__ == "__main__":
    main()
