"""A signed sector update travels from the energy plugin to a subscriber.

Real sectorcastd on a free loopback port, real keys, the real energy
plugin reading a register in a temp dir, sectorcast-sub verifying against
the JWKS. Run: SC_BUILD=build /usr/bin/python3 tests/integration/test_flow.py
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, BUILD, Gateway, copy_register, energy_plugin,  # noqa: E402
                     journal_head, journal_rows, run_tests, start_energy, wait_for)


def load(path):
    with open(path) as f:
        return json.load(f)


def save(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.rename(tmp, path)


def seqs_strictly_plus_one(envs):
    by_channel = {}
    for e in envs:
        by_channel.setdefault(e["channel"], []).append(e["seq"])
    for ch, seqs in by_channel.items():
        for a, b in zip(seqs, seqs[1:]):
            assert b == a + 1, "seq on %s not +1: %s" % (ch, seqs)
    return by_channel


def test_register_change_arrives_verified():
    gw = Gateway(start=False)
    with gw:
        reg, full = start_energy(gw)
        sub = gw.subscriber("motie", ["energy."])
        gw.wait_subscribed("motie", "energy.")

        # the whole register appears: one message per entry
        tasks = load(os.path.join(full, "tasks.json"))
        stds = load(os.path.join(full, "standards.json"))
        save(os.path.join(reg, "tasks.json"), tasks)
        save(os.path.join(reg, "standards.json"), stds)
        n_entries = len(tasks["tasks"]) + len(stds["standards"])
        wait_for(lambda: len(sub.lines()) >= n_entries, 20, "%d entries" % n_entries)
        envs = sub.envelopes()
        assert len(envs) == n_entries, len(envs)
        keys = sorted(e["key"] for e in envs)
        want = sorted([t["id"] for t in tasks["tasks"]] + [s["id"] for s in stds["standards"]])
        assert keys == want, (keys, want)
        for e in envs:
            assert e["v"] == 1 and e["source"]["plugin"] == "energy"
            assert e["source"]["gateway"] == "gw-test"
            sub_sector = e["data"]["subsector"]
            kind_family = "tasks" if e["kind"].startswith("task.") else "standards"
            assert e["channel"] == "energy.%s.%s" % (sub_sector, kind_family), e
        seqs_strictly_plus_one(envs)

        # change exactly one task and one standard: exactly two messages
        t0 = tasks["tasks"][0]
        t0["status"] = "completed" if t0["status"] != "completed" else "in-progress"
        t0["milestones"][0]["status"] = "done"
        s0 = stds["standards"][0]
        s0["title"] = s0["title"] + " (revised)"
        save(os.path.join(reg, "tasks.json"), tasks)
        save(os.path.join(reg, "standards.json"), stds)
        wait_for(lambda: len(sub.lines()) >= n_entries + 2, 20, "two changes")
        time.sleep(1.0)  # nothing else may follow
        envs = sub.envelopes()
        assert len(envs) == n_entries + 2, [e["key"] for e in envs[n_entries:]]
        changed = {e["key"]: e for e in envs[n_entries:]}
        assert set(changed) == {t0["id"], s0["id"]}, changed.keys()
        assert changed[t0["id"]]["data"] == t0
        assert changed[s0["id"]]["data"] == s0
        assert changed[s0["id"]]["kind"] == "standard.updated"
        by = seqs_strictly_plus_one(envs)
        assert all(v[0] == 1 for v in by.values()), by

        # the subscriber refused nothing
        assert sub.alive()
        rc = sub.stop()
        assert rc == 0, rc
        assert "0 refused" in sub.log(), sub.log()
        assert gw.stop() == 0


def test_seq_continues_after_restart():
    gw = Gateway(start=False)
    with gw:
        reg, full = start_energy(gw)
        sub = gw.subscriber("motie", ["energy.nuclear.tasks."])
        gw.wait_subscribed("motie", "energy.nuclear.tasks.")
        tasks = load(os.path.join(full, "tasks.json"))
        nuc = [t for t in tasks["tasks"] if t["subsector"] == "nuclear"]
        save(os.path.join(reg, "tasks.json"), {"tasks": nuc})
        wait_for(lambda: len(sub.lines()) >= len(nuc), 20, "nuclear tasks")
        epoch = sub.envelopes()[0]["epoch"]
        assert gw.stop() == 0
        before = journal_rows(gw, "energy.nuclear.tasks")
        assert [r[0] for r in before] == list(range(1, len(nuc) + 1))

        # restart on the same journal, then change one task
        gw.start()
        gw.wait_subscribed("motie", "energy.nuclear.tasks.", timeout=20)
        nuc[0]["status"] = "at-risk" if nuc[0]["status"] != "at-risk" else "in-progress"
        save(os.path.join(reg, "tasks.json"), {"tasks": nuc})
        wait_for(lambda: any(e["key"] == nuc[0]["id"] and e["data"] == nuc[0]
                             for e in sub.envelopes()), 20, "the update")
        upd = [e for e in sub.envelopes() if e["data"] == nuc[0]][-1]
        assert upd["epoch"] == epoch
        # the restart republished nothing (durable plugin state): the
        # update is the very next message of the channel
        assert upd["seq"] == len(nuc) + 1, upd["seq"]
        assert gw.stop() == 0
        after = journal_rows(gw, "energy.nuclear.tasks")
        # sequence numbers are never reused: the old rows are untouched and
        # the numbering continues without a hole
        assert after[:len(before)] == before
        assert [r[0] for r in after] == list(range(1, len(after) + 1))
        assert upd["seq"] == after[-1][0]
        sub.stop()


def test_only_granted_channels_are_published():
    gw = Gateway(start=False)
    with gw:
        reg, full = start_energy(gw, channels=["energy.nuclear."])
        sub = gw.subscriber("motie", ["energy."])
        gw.wait_subscribed("motie", "energy.")
        for f in ("tasks.json", "standards.json"):
            save(os.path.join(reg, f), load(os.path.join(full, f)))
        tasks = load(os.path.join(full, "tasks.json"))["tasks"]
        stds = load(os.path.join(full, "standards.json"))["standards"]
        n_nuc = len([e for e in tasks + stds if e["subsector"] == "nuclear"])
        wait_for(lambda: len(sub.lines()) >= n_nuc, 20, "nuclear entries")
        time.sleep(1.0)
        envs = sub.envelopes()
        assert len(envs) == n_nuc, len(envs)
        assert all(e["channel"].startswith("energy.nuclear.") for e in envs)
        # the plugin was told at start which of its channels are not granted
        assert "energy.lng.tasks: channel not granted to this plugin" in gw.broker.log()
        sub.stop()


def test_check_reports_problems_with_file_and_line():
    gw = Gateway(start=False)
    with gw:
        with open(gw.config) as f:
            text = f.read()
        # a plugin granted a channel outside its sector, and a missing .so
        gw.plugins = [energy_plugin(os.path.join(gw.tmp, "nowhere"), channels=["semis.ai."])]
        gw.plugins[0]["path"] = os.path.join(gw.tmp, "missing.so")
        gw.write_config()
        r = gw.check()
        assert r.returncode == 1, r
        assert "outside its sector" in r.stderr, r.stderr
        assert "not found" in r.stderr, r.stderr
        # one line per problem, each naming file and line, then the summary
        problems = r.stderr.splitlines()[:-1]
        assert len(problems) >= 2, r.stderr
        for line in problems:
            assert line.startswith(gw.config + ":"), line
        # the valid config passes
        with open(gw.config, "w") as f:
            f.write(text)
        r = gw.check()
        assert r.returncode == 0, r.stderr


def test_bad_plugins_are_refused_others_run():
    """A .so that is missing, not a shared object, lacks the symbol or
    speaks another ABI: --check names each and fails; the running broker
    refuses each by name and runs the good plugin."""
    gw = Gateway(start=False)
    with gw:
        reg = os.path.join(gw.tmp, "register")
        os.makedirs(reg)
        full = copy_register("energy", os.path.join(gw.tmp, "full"))
        notso = os.path.join(gw.tmp, "notaplugin.so")
        with open(notso, "w") as f:
            f.write("this is not an ELF file\n")
        good = energy_plugin(reg)
        bad_abi = dict(energy_plugin(reg, name="badabi"),
                       path=os.path.join(BUILD, "tests", "plugins", "bad_abi.so"), settings={})
        nosym = dict(energy_plugin(reg, name="nosym"),
                     path=os.path.join(BUILD, "tests", "plugins", "no_symbol.so"), settings={})
        junk = dict(energy_plugin(reg, name="junk"), path=notso, settings={})
        gone = dict(energy_plugin(reg, name="gone"),
                    path=os.path.join(gw.tmp, "missing.so"), settings={})
        # --check names each bad file and fails
        named = ("bad_abi.so: speaks ABI version", "no_symbol.so: no symbol 'sc_plugin_entry'",
                 "notaplugin.so: cannot load")
        gw.plugins = [bad_abi, nosym, junk, good]
        gw.write_config()
        r = gw.check()
        assert r.returncode == 1
        for needle in named:
            assert needle in r.stderr, (needle, r.stderr)
        gw.plugins = [gone, good]
        gw.write_config()
        r = gw.check()
        assert r.returncode == 1 and "missing.so' not found" in r.stderr, r.stderr
        gw.plugins = [bad_abi, nosym, junk, gone, good]
        gw.write_config()
        # the broker refuses each one, by name, and runs the good plugin
        gw.start()
        sub = gw.subscriber("motie", ["energy."])
        gw.wait_subscribed("motie", "energy.")
        log = gw.broker.log()
        for name, needle in (("badabi", "bad_abi.so: speaks ABI version"),
                             ("nosym", "no_symbol.so: no symbol 'sc_plugin_entry'"),
                             ("junk", "notaplugin.so: cannot load"),
                             ("gone", "missing.so: not found")):
            lines = [l for l in log.splitlines() if "[%s]" % name in l and needle in l]
            assert lines and lines[0].endswith("plugin not started"), (name, log)
            assert gw.config + ":" in lines[0], lines[0]
        assert "[energy] starting plugin energy" in log, log
        for f in ("tasks.json", "standards.json"):
            save(os.path.join(reg, f), load(os.path.join(full, f)))
        want = (len(load(os.path.join(full, "tasks.json"))["tasks"]) +
                len(load(os.path.join(full, "standards.json"))["standards"]))
        wait_for(lambda: len(sub.lines()) >= want, 20, "the good plugin's messages")
        assert gw.stop() == 0
        sub.stop()


if __name__ == "__main__":
    run_tests([
        test_register_change_arrives_verified,
        test_seq_continues_after_restart,
        test_only_granted_channels_are_published,
        test_check_reports_problems_with_file_and_line,
        test_bad_plugins_are_refused_others_run,
    ])
