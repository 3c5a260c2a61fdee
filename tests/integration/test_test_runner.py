"""tools/test.sh itself: start lines, cases shown as they pass, case counts.

The real tools/test.sh runs on a fixture tree of fake test programs with
known results (no broker, no real suite): a cmocka program built here with
3 passing cases and 1 failing one, python files on the real harness
(tests/integration/harness.py), one of them listed in tests/release-only,
one that dies before any case (or hangs, for the timeout), and a fake fuzz
runner with 2 targets. The closing "N passed, N failed" must count exactly
those cases.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, run_tests  # noqa: E402

CMOCKA_FAKE = r"""
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
static int failing(void) { const char *e = getenv("FIXTURE_FAIL"); return e && strcmp(e, "1") == 0; }
static void fake_one(void **s) { (void)s; assert_int_equal(1, 1); }
static void fake_two(void **s) { (void)s; assert_true(1); }
static void fake_three(void **s) { (void)s; assert_non_null(s); }
static void fake_fails(void **s) { (void)s; assert_int_equal(failing(), 0); }
int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(fake_one), cmocka_unit_test(fake_two),
        cmocka_unit_test(fake_fails), cmocka_unit_test(fake_three),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
"""

PY_HEAD = """import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run_tests
FAIL = os.environ.get("FIXTURE_FAIL") == "1"
"""

# case_two waits for the go file, which the test writes only once it has
# read "ok   case_one" from tools/test.sh's output: it proves that a case
# is shown when it passes, not when its program ends.
PY_A = PY_HEAD + """
def case_one():
    pass
def case_two():
    go = os.environ["FIXTURE_GO"]
    deadline = time.monotonic() + 30
    while not os.path.exists(go):
        assert time.monotonic() < deadline, "case_one was not shown while running"
        time.sleep(0.02)
def case_breaks():
    assert not FAIL, "fixture failure in case_breaks"
run_tests([case_one, case_two, case_breaks])
"""

PY_B = PY_HEAD + """
def heavy_one():
    pass
def heavy_two():
    pass
run_tests([heavy_one, heavy_two])
"""

PY_C = PY_HEAD + """
if FAIL:
    sys.exit(3)  # dies before any case
if os.environ.get("FIXTURE_HANG") == "1":
    time.sleep(300)  # hangs before any case
def only_case():
    pass
run_tests([only_case])
"""

FUZZ = """#!/bin/sh
echo "PASS  fuzz_alpha (100 runs in 1s, corpus 0 new)"
echo "PASS  fuzz_beta (100 runs in 1s, corpus 0 new)"
echo "2 passed, 0 failed"
"""

RELEASE_ONLY = """# heavy tests: release build only
tests/integration/test_b.py   # the heavy one
"""


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def fixture_tree(top):
    write(os.path.join(top, "tools/test.sh"),
          open(os.path.join(ROOT, "tools/test.sh")).read(), 0o755)
    write(os.path.join(top, "tools/deps.sh"), "#!/bin/sh\nexit 0\n", 0o755)
    write(os.path.join(top, "SConstruct"), "# fixture: nothing to build\n")
    write(os.path.join(top, "tests/unit/test_fake.c"), CMOCKA_FAKE)
    cflags = subprocess.run(["pkg-config", "--cflags", "--libs", "cmocka"],
                            capture_output=True, text=True, check=True).stdout.split()
    for b in ("build", "build/asan"):
        os.makedirs(os.path.join(top, b, "tests"))
        subprocess.run(["gcc", "-std=c11", "-o", os.path.join(top, b, "tests/test_fake"),
                        os.path.join(top, "tests/unit/test_fake.c")] + cflags,
                       check=True, timeout=60)
    write(os.path.join(top, "tests/integration/test_a.py"), PY_A)
    write(os.path.join(top, "tests/integration/test_b.py"), PY_B)
    write(os.path.join(top, "tests/interop/test_c.py"), PY_C)
    for d in ("integration", "interop"):  # the real harness
        shutil.copy(os.path.join(ROOT, "tests/integration/harness.py"),
                    os.path.join(top, "tests", d, "harness.py"))
    write(os.path.join(top, "tests/fuzz/run.sh"), FUZZ, 0o755)
    write(os.path.join(top, "tests/release-only"), RELEASE_ONLY)


def run_runner(top, fail, **extra_env):
    """Run the fixture's tools/test.sh; return (exit status, output lines).
    Writes the go file as soon as "ok   case_one" is read."""
    go = os.path.join(top, "go")
    if os.path.exists(go):
        os.unlink(go)
    env = dict(os.environ, FIXTURE_FAIL="1" if fail else "0", FIXTURE_GO=go,
               TMPDIR=top, **extra_env)
    env.pop("SC_BUILD", None)
    p = subprocess.Popen([os.path.join(top, "tools/test.sh")], cwd=top, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(120, p.kill)  # bounded: the whole fixture run
    timer.start()
    lines = []
    try:
        for line in p.stdout:
            lines.append(line.rstrip("\n"))
            if line.strip().startswith("ok   case_one"):
                open(go, "w").close()
        rc = p.wait()
    finally:
        timer.cancel()
    return rc, lines


def index_of(lines, text, start=0):
    for i in range(start, len(lines)):
        if text in lines[i]:
            return i
    raise AssertionError("%r not in output:\n%s" % (text, "\n".join(lines)))


def test_counts_cases_and_names_failures():
    top = tempfile.mkdtemp(prefix="sc-runner-")
    try:
        fixture_tree(top)
        rc, out = run_runner(top, fail=True)
        text = "\n".join(out)
        assert rc == 1, "exit %d with failures\n%s" % (rc, text)
        # cmocka 3+3, test_a 2+2, test_b 2 (release only), test_c 0,
        # fuzz 2 = 14 passed; fake_fails x2, case_breaks x2, test_c x2 = 6
        assert out[-1] == "14 passed, 6 failed", text
        # a start line per program, in order, numbered out of the total
        starts = [
            "[1/8] build/tests/test_fake",
            "[2/8] build: tests/integration/test_a.py",
            "[3/8] build: tests/integration/test_b.py  (release only: tests/release-only)",
            "[4/8] build: tests/interop/test_c.py",
            "[5/8] build/asan/tests/test_fake",
            "[6/8] build/asan: tests/integration/test_a.py",
            "[7/8] build/asan: tests/interop/test_c.py",
            "[8/8] fuzz: tests/fuzz/run.sh",
        ]
        at = 0
        for s in starts:
            at = index_of(out, s, at) + 1
        assert not any("build/asan: tests/integration/test_b.py" in x for x in out), text
        index_of(out, "ran against the release build only (tests/release-only): "
                      "tests/integration/test_b.py")
        # cases shown as they pass, failures named with their log
        for case in ("ok   case_one", "ok   heavy_two", "PASS  fuzz_beta"):
            index_of(out, case)
        i = index_of(out, "FAIL fake_fails")
        index_of(out, "[   LINE   ] --- ", i)
        i = index_of(out, "FAIL case_breaks")
        index_of(out, "fixture failure in case_breaks", i)
        index_of(out, "FAIL exit status 3")
        # the closing list names every failed case
        for name in ("build/tests/test_fake: fake_fails",
                     "build/asan/tests/test_fake: fake_fails",
                     "build: tests/integration/test_a.py: case_breaks",
                     "build/asan: tests/integration/test_a.py: case_breaks",
                     "build: tests/interop/test_c.py: (exit 3, outside any test case)"):
            index_of(out, name)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_all_passing_exits_zero():
    top = tempfile.mkdtemp(prefix="sc-runner-")
    try:
        fixture_tree(top)
        rc, out = run_runner(top, fail=False)
        text = "\n".join(out)
        # cmocka 4+4, test_a 3+3, test_b 2, test_c 1+1, fuzz 2
        assert out[-1] == "20 passed, 0 failed", text
        assert rc == 0, text
        assert not any(x.startswith("failed:") for x in out), text
        # the logs of a passing run are not left behind
        assert not [d for d in os.listdir(top) if d.startswith("sectorcast-test.")], \
            os.listdir(top)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_hung_program_is_stopped_and_counted():
    """A program still running after SC_TEST_TIMEOUT is interrupted, counted
    as one failure and named; the run goes on with the next program."""
    top = tempfile.mkdtemp(prefix="sc-runner-")
    try:
        fixture_tree(top)
        t0 = time.monotonic()
        rc, out = run_runner(top, fail=False, FIXTURE_HANG="1", SC_TEST_TIMEOUT="3")
        text = "\n".join(out)
        # test_c hangs in both builds: its case never runs (1 + 1 fewer
        # passed than the all-passing run), each counts one failure
        assert out[-1] == "18 passed, 2 failed", text
        assert rc == 1, text
        assert time.monotonic() - t0 < 60, "the hangs were not cut: %s" % text
        index_of(out, "FAIL timed out after 3 s")
        for name in ("build: tests/interop/test_c.py: (timed out after 3 s)",
                     "build/asan: tests/interop/test_c.py: (timed out after 3 s)"):
            index_of(out, name)
        index_of(out, "[8/8] fuzz: tests/fuzz/run.sh")  # the run went on
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    run_tests([test_counts_cases_and_names_failures, test_all_passing_exits_zero,
               test_hung_program_is_stopped_and_counted])
