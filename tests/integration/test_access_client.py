"""What sectorcast-sub does with its agency's grants and a rejected key.

With the service endpoint (-s), sectorcast-sub asks the gateway who it is
before subscribing: a subtree outside the agency's grants is refused up
front with "refused: SUBTREE (not granted to agency ID)"; if none is
granted it exits 5. A key the operator has not listed is rejected by the
gateway's ZAP handler: "broker rejected our key (code 400)", exit 4, at
once -- with or without -s.

Run: SC_BUILD=build /usr/bin/python3 tests/integration/test_access_client.py
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Gateway, burst_plugin, keygen, run_tests, wait_for  # noqa: E402

NUC = "energy.nuclear.test"
AGENCIES = {"motie": ["energy."], "doe": ["energy.nuclear."]}


def test_refused_subtree_reported_granted_one_received():
    gw = Gateway(plugins=[burst_plugin(NUC, count=50, interval_ms=20,
                                       start_delay_ms=1500)],
                 agencies=AGENCIES)
    with gw:
        sub = gw.subscriber("doe", ["energy.", "energy.nuclear."], service=True)
        gw.wait_subscribed("doe", "energy.nuclear.")
        wait_for(lambda: len(sub.lines()) >= 50, 30, "50 nuclear messages")
        assert "refused: energy. (not granted to agency doe)\n" in sub.log(), sub.log()
        assert "refused: energy.nuclear." not in sub.log()
        envs = sub.envelopes()
        assert [e["seq"] for e in envs] == list(range(1, 51))
        assert {e["channel"] for e in envs} == {NUC}
        # the refused subtree was never even asked of the broker
        assert "refused subscription 'energy.'" not in gw.broker.log()
        assert sub.stop() == 0


def test_nothing_granted_exits_nonzero():
    gw = Gateway(agencies=AGENCIES)
    with gw:
        t0 = time.monotonic()
        sub = gw.subscriber("doe", ["energy.lng."], service=True)
        wait_for(lambda: not sub.alive(), 15, "exit")
        rc = sub.stop()
        assert rc == 5, (rc, sub.log())
        assert "refused: energy.lng. (not granted to agency doe)\n" in sub.log(), sub.log()
        assert time.monotonic() - t0 < 10


def test_unlisted_key_is_rejected():
    gw = Gateway(agencies=AGENCIES)
    with gw:
        keygen("curve", os.path.join(gw.keys, "stranger"))
        for extra in (["-s", gw.service], []):
            t0 = time.monotonic()
            sub = gw.subscriber("stranger", ["energy."], extra)
            wait_for(lambda: not sub.alive(), 15, "exit")
            rc = sub.stop()
            assert rc == 4, (extra, rc, sub.log())
            assert "broker rejected our key (code 400)" in sub.log(), sub.log()
            assert time.monotonic() - t0 < 10, time.monotonic() - t0


def test_whoami_without_service_behaves_as_before():
    """Without -s nothing is checked up front: the broker refuses the
    subscription and the subscriber just receives nothing for it."""
    gw = Gateway(agencies=AGENCIES)
    with gw:
        sub = gw.subscriber("doe", ["energy.lng."], ["-t", "1500"])
        wait_for(lambda: "refused subscription 'energy.lng.' of agency 'doe': not granted"
                 in gw.broker.log(), 10, "the broker's refusal")
        wait_for(lambda: not sub.alive(), 15, "idle exit")
        assert sub.stop() == 3, sub.log()
        assert "refused: " not in sub.log().replace("0 refused", "")
        assert sub.lines() == [], sub.stdout()


if __name__ == "__main__":
    run_tests([
        test_refused_subtree_reported_granted_one_received,
        test_nothing_granted_exits_nonzero,
        test_unlisted_key_is_rejected,
        test_whoami_without_service_behaves_as_before,
    ])
