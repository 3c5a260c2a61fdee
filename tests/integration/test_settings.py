"""Plugin settings checked before anything starts (issue 8): for each
bundled sector plugin, `sectorcastd --check` names an out-of-range number,
a value outside its allowed set, a malformed alert rule and a wrong list
shape as FILE:LINE at the setting's own line; a SIGHUP reload runs the same
checks; `--describe x.so` finds a file in the current directory and shows
ranges, allowed values and shapes.
"""
import os
import re
import signal
import subprocess

from harness import (BIN, PLUGINS, ROOT, Gateway, energy_plugin, run_tests,
                     wait_for)

SECTORS = {
    "energy": (["energy.hydrogen.", "energy.nuclear.", "energy.lng."],
               "lng_inventory_days"),
    "semis_ai": (["semis.", "ai."], "chip_lead_time_weeks"),
    "defense_shipbuilding": (["defense.", "shipbuilding."],
                             "shipyard_dock_availability_pct"),
}

# One plugin entry, as an operator writes it; each "#! NAME" marks a line
# whose number a test asserts (the marker is a libconfig comment).
GOOD_RULES = """\
      alert_rules = (
        { indicator = "%(series)s"; op = "<"; threshold = 10; severity = "Severe";
          escalate = ( { threshold = 7; severity = "Extreme"; } );
          clear = 12; category = "Infra"; }
      );"""

BAD_SETTINGS = """\
      poll_interval_ms = 5;                                    #! range
      alert_rules = (
        { indicator = "%(series)s"; op = "<"; threshold = 10;
          severity = "Urgent";                                 #! allowed
          clear = 9; },                                        #! clear
        { indicator = "other_series"; op = ">"; threshold = 20; severity = "Minor";
          escalate = { threshold = 26; severity = "Severe"; }; #! shape
          consecutive = 2; }
      );"""

# The same with the table's problems fixed: only the malformed rule (clear
# on the wrong side, which only the plugin's check() can see) is left.
FIXED_BUT_CLEAR = BAD_SETTINGS.replace("= 5;", "= 50;").replace('"Urgent"', '"Severe"') \
    .replace('escalate = { threshold = 26; severity = "Severe"; };',
             'escalate = ( { threshold = 26; severity = "Severe"; } );')


def plugin_text(name, settings):
    chans, series = SECTORS[name]
    register = os.path.join(ROOT, "conf", "registers", name)
    return ("  { name = \"%s\"; path = \"%s\"; sector = \"%s\";\n"
            "    channels = [ %s ];\n"
            "    settings: {\n"
            "      register_dir = \"%s\";\n%s\n"
            "    }; }\n" % (name, os.path.join(PLUGINS, name + ".so"), name,
                            ", ".join('"%s"' % c for c in chans), register,
                            settings % {"series": series}))


def write_with_plugins(gw, entries):
    """The gateway's config with `entries` (plugin texts) as its plugins;
    returns {marker: line number}."""
    gw.plugins = []
    gw.write_config()
    with open(gw.config) as f:
        text = f.read()
    assert "plugins = (\n\n);" in text, text
    text = text.replace("plugins = (\n\n);", "plugins = (\n" + ",\n".join(entries) + ");")
    with open(gw.config, "w") as f:
        f.write(text)
    marks = {}
    for n, line in enumerate(text.split("\n"), 1):
        if "#! " in line:
            marks[line.split("#! ")[1].strip()] = n
    return marks


def check_lines(gw):
    r = gw.check()
    return r.returncode, [l for l in r.stderr.splitlines() if l.startswith(gw.config + ":")], r.stderr


def test_check_names_each_bad_setting_at_its_line():
    gw = Gateway(start=False)
    with gw:
        for name in SECTORS:
            marks = write_with_plugins(gw, [plugin_text(name, BAD_SETTINGS)])
            rc, lines, err = check_lines(gw)
            assert rc == 1, err
            want = [
                (marks["range"], "setting 'poll_interval_ms': 5 is out of range (10..3600000)"),
                (marks["allowed"], "setting 'alert_rules[0].severity': \"Urgent\" is not one of "
                                   "\"Minor\", \"Moderate\", \"Severe\", \"Extreme\""),
                (marks["shape"], "setting 'alert_rules[1].escalate': must be a list of groups"),
            ]
            for line, text in want:
                prefix = "%s:%d: plugin '%s': %s" % (gw.config, line, name, text)
                assert any(l.startswith(prefix) for l in lines), (prefix, err)
            # the table's problems stop the check before the plugin's own:
            # fix them, and the malformed rule (clear on the wrong side) is
            # reported by the plugin's check() at the line of `clear`
            marks = write_with_plugins(gw, [plugin_text(name, FIXED_BUT_CLEAR)])
            rc, lines, err = check_lines(gw)
            assert rc == 1, err
            prefix = ("%s:%d: plugin '%s': setting 'alert_rules[0].clear': must be above the first "
                      "threshold 10" % (gw.config, marks["clear"], name))
            assert any(l.startswith(prefix) for l in lines), (prefix, err)
            assert len(lines) == 1, err
            # and the good form passes
            write_with_plugins(gw, [plugin_text(name, GOOD_RULES)])
            rc, lines, err = check_lines(gw)
            assert rc == 0, err


def test_check_refuses_the_old_rule_string_and_bad_list_items():
    """The rule language inside one string is gone: such a config is named
    as a wrong shape, not silently taken."""
    gw = Gateway(start=False)
    with gw:
        bad = ('      alert_rules = "lng_inventory_days < 10 Severe clear 12";  #! string\n'
               '      alert_sender = "has space";                              #! sender')
        entries = [plugin_text("energy", bad)]
        marks = write_with_plugins(gw, entries)
        rc, lines, err = check_lines(gw)
        assert rc == 1, err
        prefix = ("%s:%d: plugin 'energy': setting 'alert_rules': must be a list of groups"
                  % (gw.config, marks["string"]))
        assert any(l.startswith(prefix) for l in lines), (prefix, err)
        # two plugins at once: each problem under its own plugin
        entries = [plugin_text("energy", '      alert_sender = "has space";  #! sender'),
                   plugin_text("semis_ai", '      poll_interval_ms = 3600001;  #! range')]
        marks = write_with_plugins(gw, entries)
        rc, lines, err = check_lines(gw)
        assert rc == 1, err
        for prefix in ("%s:%d: plugin 'energy': setting 'alert_sender': \"has space\" cannot be a CAP sender"
                       % (gw.config, marks["sender"]),
                       "%s:%d: plugin 'semis_ai': setting 'poll_interval_ms': 3600001 is out of range"
                       % (gw.config, marks["range"])):
            assert any(l.startswith(prefix) for l in lines), (prefix, err)


def test_reload_runs_the_same_checks():
    """SIGHUP with a rule the plugin's check() refuses: the log names it
    at its line, and the running broker and plugin keep going."""
    gw = Gateway(start=False)
    with gw:
        reg = os.path.join(ROOT, "conf", "registers", "energy")
        p = energy_plugin(reg)
        gw.plugins = [p]
        gw.write_config()
        gw.start()
        wait_for(lambda: "register " in gw.broker.log(), 20, "energy plugin start")
        marks = write_with_plugins(gw, [plugin_text("energy", FIXED_BUT_CLEAR)])
        gw.broker.proc.send_signal(signal.SIGHUP)
        needle = "%s:%d: plugin 'energy': setting 'alert_rules[0].clear': must be above" % (
            gw.config, marks["clear"])
        wait_for(lambda: needle in gw.broker.log(), 20, "reload check line")
        assert gw.broker.alive(), gw.broker.log()


def test_describe_shows_ranges_and_finds_a_local_file():
    r = subprocess.run([os.path.join(BIN, "sectorcastd"), "--describe", "energy.so"],
                       cwd=PLUGINS, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "energy" in out and "(ABI 2)" in out, out
    assert "range 10..3600000" in out, out
    assert "list of groups" in out and "alert_rules" in out, out
    assert 'one of "Minor", "Moderate", "Severe", "Extreme"' in out, out
    assert "check: the plugin checks its settings itself too" in out, out


def broker_settings():
    """`sectorcastd --settings` as {group: {name: (default, range)}}."""
    r = subprocess.run([os.path.join(BIN, "sectorcastd"), "--settings"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    groups, cur = {}, None
    for line in r.stdout.splitlines():
        m = re.match(r"^(\w+):$", line)
        if m:
            cur = groups.setdefault(m.group(1), {})
            continue
        m = re.match(r"^  (\w+) +(.*)$", line)
        if m and cur is not None:
            d = re.search(r"default (\S+?)(;|$)", m.group(2))
            rg = re.search(r"range (\S+)", m.group(2))
            cur[m.group(1)] = (d.group(1) if d else None, rg.group(1) if rg else None)
    return groups


def docs_table(group):
    """docs/configuration.md's table of `group` as {name: (type, default)}."""
    text = open(os.path.join(ROOT, "docs", "configuration.md")).read()
    sec = re.search(r"^## `%s` \(group[^\n]*\n(.*?)(?=^## )" % group, text, re.S | re.M)
    assert sec, "no section for %s" % group
    rows = {}
    for line in sec.group(1).splitlines():
        m = re.match(r"^\| `(\w+)` \| ([^|]*) \| ([^|]*) \|", line)
        if m:
            rows[m.group(1)] = (m.group(2).strip(), m.group(3).strip())
    return rows


def test_broker_settings_are_the_documented_ones():
    """The broker's scalar groups (gateway, listen, limits, curve, control,
    monitoring, audit, logging) are declared as tables and checked by the
    settings engine (like a plugin's settings); `sectorcastd --settings`
    prints the tables, and docs/configuration.md states the same settings,
    defaults and ranges."""
    got = broker_settings()
    assert set(got) == {"gateway", "listen", "limits", "curve", "control",
                        "monitoring", "audit", "logging"}, got
    assert len(got["gateway"]) == 9 and len(got["limits"]) == 13, got
    for group, table in got.items():
        docs = docs_table(group)
        assert set(docs) == set(table), (group, sorted(set(docs) ^ set(table)))
        for name, (default, rng) in table.items():
            dtype, ddefault = docs[name]
            if default is None:
                assert ddefault.startswith(("—", "none")), (group, name, ddefault)
            else:
                shown = re.match(r'^`"?([^`"]*)"?`', ddefault)
                assert shown and shown.group(1) == default, (group, name, default, ddefault)
            if rng:
                lo, hi = rng.split("..")
                # the range as the docs write it (bytes may be in MiB/GiB)
                human = {"1048576": "1 MiB", "17179869184": "16 GiB"}
                lo, hi = human.get(lo, lo), human.get(hi, hi)
                # "0 or 50..3600000": the table's range holds 0..max and the
                # loader refuses what lies between (a check no table says)
                assert ("%s..%s" % (lo, hi) in dtype or
                        re.search(r"\b%s or \d+\.\.%s\b" % (lo, hi), dtype)), \
                    (group, name, lo, hi, dtype)


if __name__ == "__main__":
    run_tests([
        test_check_names_each_bad_setting_at_its_line,
        test_check_refuses_the_old_rule_string_and_bad_list_items,
        test_reload_runs_the_same_checks,
        test_describe_shows_ranges_and_finds_a_local_file,
        test_broker_settings_are_the_documented_ones,
    ])
