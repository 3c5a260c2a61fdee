"""The SDK: `scons install` gives header, library and pkg-config file under
a prefix; the template plugin builds out of tree against it and runs under
sectorcastd; a subscriber program links against the installed library.
The installed example plugin project builds with `make` against the
installed prefix, its unit test (the installed plugin test kit) passes, and
it publishes through the installed sectorcastd started on its installed
minimal config with keys from `sectorcast-keygen init`.

Run: SC_BUILD=build /usr/bin/python3 tests/integration/test_sdk.py
(the install step always installs the release build; the plugin then runs
under the broker of SC_BUILD)
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import json  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

from harness import BIN, ROOT, Gateway, free_port, run_tests  # noqa: E402

CLIENT_PROGRAM = r"""
#include <stdio.h>
#include <sectorcast/client.h>
int main(int argc, char **argv)
{
    char err[256];
    if (argc != 5) { fprintf(stderr, "usage: sub EP JWKS SERVERKEY KEYBASE\n"); return 2; }
    sc_client_options_t o = {0};
    o.endpoint = argv[1];
    o.jwks_path = argv[2];
    o.server_public_key = argv[3];
    o.client_key_base = argv[4];
    sc_client_t *c = sc_client_new(&o, err, sizeof err);
    if (!c) { fprintf(stderr, "%s\n", err); return 1; }
    if (sc_client_subscribe(c, "energy.", err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err); return 1;
    }
    sc_message_t m;
    for (int got = 0; got < 3;) {
        int rc = sc_client_recv(c, &m, 10000, err, sizeof err);
        if (rc == SC_CLIENT_MESSAGE) { printf("%s %llu\n", m.channel, (unsigned long long)m.seq); got++; }
        else if (rc == SC_CLIENT_TIMEOUT || rc < SC_CLIENT_REFUSED) { fprintf(stderr, "%s\n", err); return 1; }
    }
    sc_client_destroy(&c);
    return 0;
}
"""


def run(argv, env=None, cwd=None):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    assert r.returncode == 0, "%s failed:\n%s\n%s" % (" ".join(argv), r.stdout, r.stderr)
    return r.stdout


def test_template_builds_out_of_tree_and_runs():
    prefix = tempfile.mkdtemp(prefix="sc-sdk-")
    try:
        run(["scons", "-Q", "install", "prefix=" + prefix], cwd=ROOT)
        for f in ("include/sectorcast/plugin.h", "include/sectorcast/client.h",
                  "lib/pkgconfig/sectorcast.pc", "lib/pkgconfig/sectorcast-plugin.pc",
                  "lib/pkgconfig/sectorcast-plugintest.pc", "bin/sectorcastd"):
            assert os.path.exists(os.path.join(prefix, f)), f
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
        cflags = run(["pkg-config", "--cflags", "sectorcast"], env=env).split()
        assert "-I%s/include" % prefix in cflags, cflags
        for pc in ("sectorcast-plugin", "sectorcast-plugintest"):
            cflags = run(["pkg-config", "--cflags", pc], env=env).split()
            assert "-I%s/include" % prefix in cflags, (pc, cflags)

        # the plugin: a copy of the template, outside the source tree
        work = os.path.join(prefix, "myplugin")
        os.makedirs(work)
        shutil.copy(os.path.join(ROOT, "plugins", "template", "template.c"), work)
        so = os.path.join(work, "myplugin.so")
        run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
             "-fvisibility=hidden"] + cflags + ["-o", so, os.path.join(work, "template.c")])
        out = run([os.path.join(BIN, "sectorcastd"), "--describe", so])
        assert "template" in out and "(ABI 2)" in out and "interval_ms" in out, out

        # a subscriber program against the installed library
        src = os.path.join(work, "sub.c")
        with open(src, "w") as f:
            f.write(CLIENT_PROGRAM)
        libs = run(["pkg-config", "--libs", "sectorcast"], env=env).split()
        exe = os.path.join(work, "sub")
        run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror"] + cflags +
            ["-o", exe, src] + libs + ["-Wl,-rpath," + os.path.join(prefix, "lib")])

        gw = Gateway(plugins=[{
            "name": "mine", "path": so, "sector": "energy",
            "channels": ["energy.template."],
            "settings": {"channel": "energy.template.ticks", "interval_ms": 50},
        }])
        with gw:
            p = subprocess.Popen([exe, gw.endpoint, gw.jwks, os.path.join(gw.keys, "broker.public"),
                                  os.path.join(gw.keys, "motie")],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                out, err = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate(timeout=5)
                raise
            assert p.returncode == 0, err
            # three verified messages of the template plugin, in order
            got = [l.split() for l in out.splitlines()]
            assert [c for c, _ in got] == ["energy.template.ticks"] * 3, out
            seqs = [int(n) for _, n in got]
            assert seqs == list(range(seqs[0], seqs[0] + 3)), out
            assert "[mine] starting plugin template" in gw.broker.log()
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def test_example_project_builds_tests_and_publishes():
    prefix = tempfile.mkdtemp(prefix="sc-sdk-")
    broker = log = None
    try:
        run(["scons", "-Q", "install", "prefix=" + prefix], cwd=ROOT)
        bindir = os.path.join(prefix, "bin")
        shipped = os.path.join(prefix, "share", "sectorcast", "example-plugin")
        for f in ("example.c", "test_example.c", "Makefile", "sectorcast.conf"):
            assert os.path.exists(os.path.join(shipped, f)), f
        # a newcomer copies the project out of the prefix and builds it
        work = os.path.join(prefix, "my-plugin")
        shutil.copytree(shipped, work)
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"),
                   PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
        out = run(["make", "test"], env=env, cwd=work)
        assert "test_example: all checks passed" in out, out
        assert os.path.exists(os.path.join(work, "example.so"))

        # every key the minimal config names, from one command
        out = run([os.path.join(bindir, "sectorcast-keygen"), "init", "keys"], cwd=work)
        keys = os.path.join(work, "keys")
        for f in ("signing.jwk", "jwks.json", "broker.secret", "broker.public",
                  "motie.secret", "motie.public"):
            assert os.path.exists(os.path.join(keys, f)), (f, out)
        for f in ("signing.jwk", "broker.secret", "motie.secret"):
            assert os.stat(os.path.join(keys, f)).st_mode & 0o777 == 0o600, f
        r = subprocess.run([os.path.join(bindir, "sectorcast-keygen"), "init", "keys"],
                           cwd=work, capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "refusing to overwrite" in r.stderr, r.stderr

        # the shipped config as is, but on free ports (tests run in parallel)
        conf = os.path.join(work, "sectorcast.conf")
        with open(conf) as f:
            text = f.read()
        assert "7601" in text and "7602" in text, text
        pub, svc = free_port(), free_port()
        with open(conf, "w") as f:
            f.write(text.replace("7601", str(pub)).replace("7602", str(svc))
                    .replace("interval_ms = 1000", "interval_ms = 100"))
        run([os.path.join(bindir, "sectorcastd"), "--check", "-c", conf], cwd=work)
        log = open(os.path.join(work, "broker.log"), "w")
        broker = subprocess.Popen([os.path.join(bindir, "sectorcastd"), "-c", conf],
                                  cwd=work, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with open(os.path.join(work, "broker.log")) as f:
                if "publishing on" in f.read():
                    break
            assert broker.poll() is None, open(os.path.join(work, "broker.log")).read()
            time.sleep(0.05)
        r = subprocess.run([os.path.join(bindir, "sectorcast-sub"),
                            "-e", "tcp://127.0.0.1:%d" % pub, "-j", "keys/jwks.json",
                            "-k", "keys/broker.public", "-c", "keys/motie",
                            "-n", "2", "-t", "20000", "example."],
                           cwd=work, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (r.stderr, open(os.path.join(work, "broker.log")).read())
        msgs = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        assert len(msgs) == 2, r.stdout
        for m in msgs:
            assert m["channel"] == "example.ticks" and m["kind"] == "example.tick", m
            assert m["data"]["instance"] == "example", m
    finally:
        if broker is not None and broker.poll() is None:
            broker.send_signal(signal.SIGTERM)
            try:
                broker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                broker.kill()
                broker.wait(timeout=5)
        if log is not None:
            log.close()
        shutil.rmtree(prefix, ignore_errors=True)


if __name__ == "__main__":
    run_tests([test_template_builds_out_of_tree_and_runs,
               test_example_project_builds_tests_and_publishes])
