"""The SDK: `scons install` gives header, library and pkg-config file under
a prefix; the template plugin builds out of tree against it and runs under
sectorcastd; a subscriber program links against the installed library.

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
from harness import BIN, ROOT, Gateway, run_tests  # noqa: E402

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
                  "lib/pkgconfig/sectorcast.pc", "bin/sectorcastd"):
            assert os.path.exists(os.path.join(prefix, f)), f
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
        cflags = run(["pkg-config", "--cflags", "sectorcast"], env=env).split()
        assert "-I%s/include" % prefix in cflags, cflags

        # the plugin: a copy of the template, outside the source tree
        work = os.path.join(prefix, "myplugin")
        os.makedirs(work)
        shutil.copy(os.path.join(ROOT, "plugins", "template", "template.c"), work)
        so = os.path.join(work, "myplugin.so")
        run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
             "-fvisibility=hidden"] + cflags + ["-o", so, os.path.join(work, "template.c")])
        out = run([os.path.join(BIN, "sectorcastd"), "--describe", so])
        assert "template" in out and "(ABI 1)" in out and "interval_ms" in out, out

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


if __name__ == "__main__":
    run_tests([test_template_builds_out_of_tree_and_runs])
