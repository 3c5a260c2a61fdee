"""`scons install` puts binaries, plugins, headers, pkg-config files, the
example config, the systemd unit and its sysusers file where they belong;
the unit passes `systemd-analyze verify`; DESTDIR stages without changing
the paths inside the files. Runs scons on the release build (up to date
after `scons`), so it is listed in tests/release-only.

Run: /usr/bin/python3 tests/integration/test_install.py
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, run_tests  # noqa: E402


def scons_install(*args):
    r = subprocess.run(["nice", "scons", "-Q", "install"] + list(args), cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


EXPECTED = [
    "bin/sectorcastd", "bin/sectorcast-ctl", "bin/sectorcast-sub", "bin/sectorcast-keygen",
    "lib/sectorcast/plugins/energy.so", "include/sectorcast/plugin.h",
    "include/sectorcast/client.h", "lib/pkgconfig/sectorcast.pc",
    "lib/pkgconfig/sectorcast-plugin.pc", "lib/pkgconfig/sectorcast-plugintest.pc",
    "lib/systemd/system/sectorcastd.service",
    "lib/sysusers.d/sectorcast.conf", "share/sectorcast/examples/sectorcast.conf",
    "share/doc/sectorcast/operations.md",
]


def test_install_and_systemd_verify():
    tmp = tempfile.mkdtemp(prefix="sc-install-")
    try:
        prefix = os.path.join(tmp, "usr")
        scons_install("prefix=" + prefix)
        for f in EXPECTED:
            assert os.path.isfile(os.path.join(prefix, f)), f
        assert os.access(os.path.join(prefix, "bin/sectorcastd"), os.X_OK)
        unit = os.path.join(prefix, "lib/systemd/system/sectorcastd.service")
        text = open(unit).read()
        assert "ExecStart=%s/bin/sectorcastd -c /etc/sectorcast/sectorcast.conf" % prefix in text
        assert "ExecReload=/bin/kill -HUP $MAINPID" in text
        assert "User=sectorcast" in text and "ProtectSystem=strict" in text
        verify = shutil.which("systemd-analyze")
        assert verify, "systemd-analyze missing (tools/deps.sh --test installs systemd)"
        r = subprocess.run([verify, "verify", unit], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        r = subprocess.run([os.path.join(prefix, "bin/sectorcastd"), "--version"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0 and "sectorcastd" in r.stdout, r
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib/pkgconfig"))
        r = subprocess.run(["pkg-config", "--cflags", "sectorcast-plugin"], env=env,
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0 and "-I%s/include" % prefix in r.stdout, r

        # DESTDIR: staged under it, paths inside still the prefix
        stage = os.path.join(tmp, "stage")
        scons_install("prefix=/opt/sectorcast", "DESTDIR=" + stage)
        for f in EXPECTED:
            assert os.path.isfile(os.path.join(stage, "opt/sectorcast", f)), f
        staged = open(os.path.join(stage, "opt/sectorcast/lib/systemd/system/"
                                   "sectorcastd.service")).read()
        assert "ExecStart=/opt/sectorcast/bin/sectorcastd " in staged
        assert stage not in staged
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_tests([test_install_and_systemd_verify])
