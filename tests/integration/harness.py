"""Test harness: a real sectorcastd on loopback, with real keys.

Used by tests/integration/test_*.py and tests/interop/test_*.py, run with
Debian's /usr/bin/python3. SC_BUILD names the build to test (build or
build/asan). Every wait is bounded; every process started is stopped.

    with Gateway(plugins=[energy_plugin(reg)]) as gw:
        sub = gw.subscriber("motie", ["energy."])
        ...
"""
import json
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("SC_BUILD", "build"))
BIN = os.path.join(BUILD, "bin")
PLUGINS = os.path.join(BUILD, "plugins")


# a broker log line: "LEVEL [component] TIME message"
_LOG_TIME = re.compile(r"^((?:debug|info|warn|error) *\[[^\]\n]*\] )"
                       r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ", re.M)


def free_port():
    """A free TCP port on 127.0.0.1 (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, what="condition", interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


def keygen(*args):
    r = subprocess.run([os.path.join(BIN, "sectorcast-keygen")] + list(args),
                       capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        raise AssertionError("sectorcast-keygen %s: %s" % (args, r.stderr))
    return r.stdout


def energy_plugin(register_dir, name="energy", channels=None, poll_ms=100):
    return {
        "name": name,
        "path": os.path.join(PLUGINS, "energy.so"),
        "sector": "energy",
        "channels": channels or ["energy.hydrogen.", "energy.nuclear.", "energy.lng."],
        "settings": {"register_dir": register_dir, "poll_interval_ms": poll_ms},
    }


def copy_register(sector, dest):
    src = os.path.join(ROOT, "conf", "registers", sector)
    shutil.copytree(src, dest)
    for f in os.listdir(dest):
        if f.startswith("demo-live"):
            os.unlink(os.path.join(dest, f))
    return dest


def _cfg_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return "%dL" % v if abs(v) > 2**31 - 1 else str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[ " + ", ".join(_cfg_value(x) for x in v) + " ]"
    return json.dumps(str(v))


class Process:
    """A child process whose output goes to a file we can read at any time."""

    def __init__(self, argv, logpath, stdout_path=None, env=None):
        self.argv = argv
        self.logpath = logpath
        self.stdout_path = stdout_path
        self._err = open(logpath, "wb")
        self._out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, env=env)

    def log(self):
        """The process's stderr. Broker lines ("LEVEL [component] TIME
        message") are given as "TIME LEVEL [component] message", so a test
        can look for "[component] message" and read the time first."""
        with open(self.logpath, "rb") as f:
            return _LOG_TIME.sub(r"\2 \1", f.read().decode("utf-8", "replace"))

    def stdout(self):
        if not self.stdout_path:
            return ""
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def lines(self):
        return [l for l in self.stdout().split("\n") if l.strip()]

    def envelopes(self, torn_ok=False):
        """The JSON lines on stdout. With torn_ok, a torn last line (the
        process was killed while writing it) is left out."""
        if not torn_ok:
            return [json.loads(l) for l in self.lines()]
        out = []
        lines = self.stdout().split("\n")
        for i, l in enumerate(lines):
            if not l.strip():
                continue
            try:
                out.append(json.loads(l))
            except ValueError:
                if i != len(lines) - 1:
                    raise
        return out

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                raise AssertionError("%s did not stop within %ds" % (self.argv[0], timeout))
        for f in (self._err, self._out):
            if hasattr(f, "close"):
                f.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


class Gateway:
    """Keys, config and a running sectorcastd in a temp directory.

    `extra` tunes the gateway group ({"gateway": {...}, "log_level": ...});
    `groups` adds top-level groups to the config (see config_groups):

        Gateway(groups={"limits": {"max_subscriptions": 3},
                        "retention": [{"subtree": "energy.", "max_messages": 5}]})
    """

    def __init__(self, plugins=(), agencies=None, extra=None, start=True, tmp=None,
                 groups=None, env=None):
        self.env = env  # the broker's whole environment (None: ours)
        self.tmp = tmp or tempfile.mkdtemp(prefix="sc-it-")
        self.keys = os.path.join(self.tmp, "keys")
        os.makedirs(self.keys, exist_ok=True)
        os.chmod(self.keys, 0o700)
        self.port = free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        self.service = "tcp://127.0.0.1:%d" % free_port()
        self.plugins = list(plugins)
        self.agencies = agencies if agencies is not None else {
            "motie": ["energy.", "semis.", "ai.", "defense.", "shipbuilding."],
            "doe": ["energy.nuclear."],
        }
        self.extra = extra or {}
        self.groups = dict(groups or {})
        self.procs = []
        self.broker = None
        if not os.path.exists(os.path.join(self.keys, "broker.secret")):
            keygen("curve", os.path.join(self.keys, "broker"))
            keygen("sign", os.path.join(self.keys, "k1.jwk"))
        for a in self.agencies:
            if not os.path.exists(os.path.join(self.keys, a + ".secret")):
                keygen("curve", os.path.join(self.keys, a))
        self.jwks = os.path.join(self.keys, "jwks.json")
        self.config = os.path.join(self.tmp, "sectorcast.conf")
        self.write_config()
        if start:
            self.start()

    def write_config(self, signing_keys=None, active="k1", sign_rules=None):
        signing_keys = signing_keys or {"k1": "keys/k1.jwk"}
        lines = [
            'gateway: { id = "gw-test"; data_dir = "data"; log_level = "%s"; %s};'
            % (self.extra.get("log_level", "debug"),
               "".join("%s = %s; " % (k, _cfg_value(v)) for k, v in self.extra.get("gateway", {}).items())),
            'listen: { publish = "%s"; service = "%s"; };' % (self.endpoint, self.service),
            'curve: { secret_key = "keys/broker.secret"; public_key = "keys/broker.public"; };',
            "signing: {",
            "  keys = ( %s );" % ", ".join(
                '{ id = "%s"; file = "%s"; }' % (k, f) for k, f in signing_keys.items()),
            '  active = "%s";' % active,
            '  jwks_file = "keys/jwks.json";',
        ]
        if sign_rules:
            lines.append("  channels = ( %s );" % ", ".join(
                '{ subtree = "%s"; active = "%s"; }' % r for r in sign_rules))
        lines += [
            "};",
            'sectors: { energy = [ "energy." ]; semis_ai = [ "semis.", "ai." ];'
            ' defense_shipbuilding = [ "defense.", "shipbuilding." ]; };',
            "agencies = ( %s );" % ", ".join(
                '{ id = "%s"; public_key = "keys/%s.public"; grants = %s; }'
                % (a, a, _cfg_value(g)) for a, g in self.agencies.items()),
            "plugins = (",
        ]
        pl = []
        for p in self.plugins:
            # a pure sink (receives = [...]) may have no sector nor channels
            s = "  { name = %s; path = %s;%s%s\n    settings: { %s };%s }" % (
                json.dumps(p["name"]), json.dumps(p["path"]),
                " sector = %s;" % json.dumps(p["sector"]) if "sector" in p else "",
                " channels = %s;" % _cfg_value(p["channels"]) if "channels" in p else "",
                " ".join("%s = %s;" % (k, _cfg_value(v)) for k, v in p.get("settings", {}).items()),
                "".join(" %s = %s;" % (k, _cfg_value(v)) for k, v in p.items()
                        if k not in ("name", "path", "sector", "channels", "settings")))
            pl.append(s)
        lines.append(",\n".join(pl))
        lines.append(");")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n" + config_groups(self.groups))

    def check(self):
        """`sectorcastd --check` of the current config (CompletedProcess)."""
        return subprocess.run([os.path.join(BIN, "sectorcastd"), "--check", "-c", self.config],
                              capture_output=True, text=True, timeout=30)

    # -- broker ---------------------------------------------------------
    def start(self, timeout=20):
        self.broker = Process([os.path.join(BIN, "sectorcastd"), "-c", self.config],
                              os.path.join(self.tmp, "broker-%d.log" % len(self.procs)),
                              env=self.env)
        self.procs.append(self.broker)
        wait_for(lambda: "publishing on" in self.broker.log() or not self.broker.alive(),
                 timeout, "broker start")
        if not self.broker.alive():
            raise AssertionError("broker exited at start:\n" + self.broker.log())
        return self.broker

    def stop(self, sig=signal.SIGTERM):
        if self.broker:
            rc = self.broker.stop(sig)
            self.broker = None
            return rc

    # -- clients --------------------------------------------------------
    def subscriber(self, agency, subtrees, extra_args=(), name=None, jwks=None,
                   service=False):
        """sectorcast-sub as `agency`, verifying against `jwks` (default:
        the gateway's own JWKS file); with service, also given the service
        endpoint (-s)."""
        n = len(self.procs)
        name = name or "sub-%s-%d" % (agency, n)
        if service:
            extra_args = ["-s", self.service] + list(extra_args)
        argv = [os.path.join(BIN, "sectorcast-sub"), "-e", self.endpoint,
                "-j", jwks or self.jwks,
                "-k", os.path.join(self.keys, "broker.public"),
                "-c", os.path.join(self.keys, agency)] + list(extra_args) + list(subtrees)
        p = Process(argv, os.path.join(self.tmp, name + ".err"),
                    os.path.join(self.tmp, name + ".out"))
        self.procs.append(p)
        return p

    def wait_subscribed(self, agency, subtree, timeout=10):
        """Wait until the broker logged that `agency` subscribed `subtree`."""
        needle = "agency '%s' subscribed %s" % (agency, subtree)
        wait_for(lambda: self.broker.log().count(needle), timeout,
                 "subscription %s of %s" % (subtree, agency))

    def close(self):
        for p in self.procs:
            try:
                p.kill()
            except Exception:
                pass
        self.procs = []

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None:
            for p in self.procs:
                try:
                    sys.stderr.write("---- %s (%s)\n%s\n" % (p.argv[0], p.logpath, p.log()[-6000:]))
                except Exception:
                    pass
        self.close()
        if et is None and not os.environ.get("SC_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False


def run_tests(tests):
    """Run test functions; print one line each and the summary line."""
    passed = failed = 0
    only = sys.argv[1:]
    for t in tests:
        if only and t.__name__ not in only:
            continue
        t0 = time.monotonic()
        try:
            t()
            passed += 1
            print("ok   %s (%.1fs)" % (t.__name__, time.monotonic() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s" % t.__name__, flush=True)
            traceback.print_exc()
            sys.stderr.flush()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed or passed == 0 else 0)


# ---------------------------------------------------------------------------
# Config groups and test plugins (tests/plugins/*.c).

def config_groups(groups):
    """libconfig text for extra top-level settings: a dict value becomes a
    group, a list of dicts a list of groups, anything else a setting."""
    out = []
    for name, v in groups.items():
        if isinstance(v, dict):
            out.append("%s: { %s };" % (name, " ".join(
                "%s = %s;" % (k, _cfg_value(x)) for k, x in v.items())))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            out.append("%s = ( %s );" % (name, ", ".join(
                "{ %s }" % " ".join("%s = %s;" % (k, _cfg_value(x)) for k, x in g.items())
                for g in v)))
        else:
            out.append("%s = %s;" % (name, _cfg_value(v)))
    return "\n".join(out) + "\n" if out else ""


def crash_plugin(name, interval_ms=20, crash_after=0, grant=None, **extra):
    """tests/plugins/crash.so as plugin `name`: a tick {"tick": N, "pid": P}
    every interval_ms on energy.test.NAME (granted `grant`, default that
    channel); with crash_after, a SIGSEGV after that many ticks per run.
    Other keys of `extra` go into the plugin's config entry (isolation)."""
    channel = "energy.test.%s" % name
    p = {
        "name": name,
        "path": os.path.join(BUILD, "tests", "plugins", "crash.so"),
        "sector": "energy",
        "channels": [grant or channel + "."],
        "settings": {"channel": channel, "interval_ms": interval_ms,
                     "crash_after": crash_after},
    }
    p.update(extra)
    return p


def burst_plugin(channel="energy.test", count=10000, interval_ms=0, key_count=10,
                 start_delay_ms=0, name="burst", sector="energy", channels=None,
                 pad_bytes=0):
    """The test plugin tests/plugins/burst.c: `count` messages {"n": N} of
    kind test.burst on `channel`, keys k0..k<key_count-1> cycling."""
    return {
        "name": name,
        "path": os.path.join(BUILD, "tests", "plugins", "burst.so"),
        "sector": sector,
        "channels": channels or [channel + "."],
        "settings": {"channel": channel, "count": count, "interval_ms": interval_ms,
                     "key_count": key_count, "start_delay_ms": start_delay_ms,
                     "pad_bytes": pad_bytes},
    }


def rogue_plugin(name="rogue", grants=("energy.",), publish=(), sector="energy", **settings):
    """tests/plugins/rogue.so, granted `grants`: one valid message per tick
    on each channel of `publish` and, once, the attacks named in
    settings['attacks'] (see tests/plugins/rogue.c)."""
    s = dict(settings)
    if publish:
        s["channels"] = ",".join(publish) if not isinstance(publish, str) else publish
    if isinstance(s.get("attacks"), (list, tuple)):
        s["attacks"] = ",".join(s["attacks"])
    return {
        "name": name,
        "path": os.path.join(BUILD, "tests", "plugins", "rogue.so"),
        "sector": sector,
        "channels": list(grants),
        "settings": s,
    }


def start_energy(gw, **plugin_kw):
    """Give the not yet started `gw` the energy plugin on an empty register
    (so that nothing is published before a test subscribes), write the
    config and start the broker. Returns (register dir, a full copy of the
    demo register to fill it from)."""
    reg = os.path.join(gw.tmp, "register")
    os.makedirs(reg)
    full = copy_register("energy", os.path.join(gw.tmp, "full"))
    gw.plugins = [energy_plugin(reg, **plugin_kw)]
    gw.write_config()
    gw.start()
    return reg, full


# ---------------------------------------------------------------------------
# Raw ZeroMQ clients (pyzmq), for speaking the protocol -- or abusing it --
# directly.

def read_key(path):
    with open(path, "rb") as f:
        return f.read().strip()


def zmq_socket(ctx, kind, gw=None, agency=None, server_key=None):
    """A pyzmq socket with linger 0; with CURVE client keys if `agency`
    (a NAME under gw.keys, or a (public, secret) pair) is given."""
    s = ctx.socket(kind)
    s.linger = 0
    if agency is not None:
        s.curve_serverkey = server_key or read_key(os.path.join(gw.keys, "broker.public"))
        if isinstance(agency, tuple):
            s.curve_publickey, s.curve_secretkey = agency
        else:
            s.curve_publickey = read_key(os.path.join(gw.keys, agency + ".public"))
            s.curve_secretkey = read_key(os.path.join(gw.keys, agency + ".secret"))
    return s


def recv_frames(sock, timeout=1.0):
    """All multipart messages arriving on `sock` within `timeout` s."""
    out = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not sock.poll(int(left * 1000) + 1):
            return out
        out.append(sock.recv_multipart())


def data_messages(frames_list):
    """Only the 2-frame data messages (heartbeats are 3 frames)."""
    return [f for f in frames_list if len(f) == 2]


def service_request(sock, rid, cmd, args=None, timeout=10.0, raw_args=None):
    """Send one request on a DEALER; return (items, final_type, final_obj).
    Every reply frame set must carry `rid`."""
    frames = [rid, cmd]
    if raw_args is not None:
        frames.append(raw_args)
    elif args is not None:
        frames.append(json.dumps(args).encode())
    sock.send_multipart(frames)
    items = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not sock.poll(int(left * 1000) + 1):
            raise AssertionError("no final reply to %r within %.1fs" % (cmd, timeout))
        fr = sock.recv_multipart()
        assert fr[0] == rid[:64], (fr, rid)
        if fr[1] == b"msg":
            items.append(fr[2:])
            continue
        assert fr[1] in (b"end", b"error"), fr
        return items, fr[1].decode(), json.loads(fr[2])


def monitor_events(mon, timeout=5.0, until=None):
    """Read (event, value) pairs from a socket monitor until `until` is
    seen or `timeout` passes."""
    import zmq.utils.monitor as zm
    evs = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not mon.poll(100):
            continue
        m = zm.recv_monitor_message(mon)
        evs.append((m["event"], m["value"]))
        if until is not None and m["event"] == until:
            break
    return evs


# ---------------------------------------------------------------------------
# The broker's journal (read-only, as an operator would) and JWS contents.

def journal_query(gw, sql, args=(), quiet=False):
    """Rows of `sql` on the broker's journal, opened read-only. With quiet,
    a journal that does not exist (yet) or cannot be read gives []."""
    import sqlite3
    path = os.path.join(gw.tmp, "data", "journal.db")
    if quiet and not os.path.exists(path):
        return []
    con = None
    try:
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
        return con.execute(sql, args).fetchall()
    except sqlite3.Error:
        if quiet:
            return []
        raise
    finally:
        if con is not None:
            con.close()


def journal_rows(gw, channel):
    """[(seq, jws)] of `channel` in the broker's journal, in seq order."""
    rows = journal_query(gw, "SELECT seq, jws FROM messages WHERE channel=? ORDER BY seq",
                         (channel,))
    return [(s, bytes(j) if not isinstance(j, str) else j.encode()) for s, j in rows]


def journal_head(gw, channel):
    """The channel's head in the broker's journal (0 if none)."""
    r = journal_query(gw, "SELECT head FROM channels WHERE name=?", (channel,), quiet=True)
    return r[0][0] if r else 0


def journal_heads(gw):
    """{channel: head} of every channel in the broker's journal."""
    return dict(journal_query(gw, "SELECT name, head FROM channels"))


def _jws_part(jws, i):
    import base64
    if isinstance(jws, str):
        jws = jws.encode()
    part = jws.split(b".")[i]
    return json.loads(base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)))


def jws_header(jws):
    """The protected header (JSON) of a compact JWS, unverified."""
    return _jws_part(jws, 0)


def jws_envelope(jws):
    """The envelope (JSON) inside a compact JWS, unverified."""
    return _jws_part(jws, 1)


def rss_kib(pid):
    """Resident memory of process `pid` in KiB (VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def recv_envelope(sock, timeout_ms):
    """(topic, envelope, unverified) of the next message on a SUB socket;
    None if nothing came within timeout_ms or it was a heartbeat."""
    if not sock.poll(timeout_ms):
        return None
    f = sock.recv_multipart()
    if len(f) != 2:
        return None  # heartbeat
    return f[0], jws_envelope(f[1])


# ---------------------------------------------------------------------------
# Operations: sectorcast-ctl and the monitoring HTTP server.

def ctl(gw, *args, as_user=None, timeout=60):
    """sectorcast-ctl -c <gw config> ARGS (CompletedProcess). With as_user
    ("nobody"), run it as that user (setpriv) against the socket path
    directly, since that user cannot read the config."""
    argv = [os.path.join(BIN, "sectorcast-ctl")]
    if as_user:
        argv = ["setpriv", "--reuid=" + as_user, "--regid=nogroup", "--clear-groups"] + argv
        argv += ["-s", os.path.join(gw.tmp, "data", "control", "sectorcastd.sock")]
    else:
        argv += ["-c", gw.config]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout)


def http_get(port, path, timeout=10):
    """(status, body text) of GET http://127.0.0.1:PORT/PATH."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
