"""example_project/run_demo.py: when one of the demo's processes dies (the port is in use, the
database is not migrated), the others are stopped, the dead one is named and the exit status is
not 0; Ctrl-C stops everything with 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from example_project import run_demo

#: Stands in for manage.py: each command prints its name, then behaves as FAKE_BEHAVIOUR says.
FAKE_MANAGE = textwrap.dedent(
    """
    import os, sys, time
    command = sys.argv[1]
    behaviour = os.environ.get("FAKE_" + command.upper(), "run")
    print("started", command, flush=True)
    if behaviour == "port-in-use":
        print("Error: That port is already in use.", file=sys.stderr, flush=True)
        sys.exit(1)
    if behaviour == "exit-0":
        sys.exit(0)
    if behaviour == "crash":
        sys.exit(3)
    time.sleep(60)
    """
)


@pytest.fixture
def fake_manage(tmp_path, monkeypatch) -> Path:
    script = tmp_path / "manage.py"
    script.write_text(FAKE_MANAGE)
    monkeypatch.setattr(run_demo, "MANAGE", str(script))
    monkeypatch.setattr(run_demo, "POLL_INTERVAL", 0.05)
    return script


def sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def exits_with(code: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", f"import sys; sys.exit({code})"])  # noqa: S603


def test_runserver_dying_at_start_fails_the_demo_and_is_named(fake_manage, monkeypatch, capfd):
    monkeypatch.setenv("FAKE_RUNSERVER", "port-in-use")
    assert run_demo.main(["--no-fakes", "--port", "8123"]) == 1
    err = capfd.readouterr().err
    assert "That port is already in use" in err
    assert "run_demo: runserver exited with status 1" in err


@pytest.mark.parametrize("dying", ["qcluster", "feedback_fakes"])
def test_any_process_dying_fails_the_demo_and_is_named(fake_manage, monkeypatch, capfd, dying):
    monkeypatch.setenv(f"FAKE_{dying.upper()}", "crash")
    assert run_demo.main([]) == 3
    assert f"run_demo: {dying} exited with status 3" in capfd.readouterr().err


def test_a_process_that_stops_with_0_still_fails_the_demo(fake_manage, monkeypatch, capfd):
    monkeypatch.setenv("FAKE_QCLUSTER", "exit-0")
    assert run_demo.main(["--no-fakes"]) == 1
    assert "run_demo: qcluster exited with status 0" in capfd.readouterr().err


def test_the_others_are_stopped_when_one_dies(monkeypatch):
    monkeypatch.setattr(run_demo, "POLL_INTERVAL", 0.05)
    survivors = {"feedback_fakes": sleeper(), "qcluster": sleeper()}
    started = time.monotonic()
    assert run_demo.supervise({**survivors, "runserver": exits_with(1)}) == 1
    assert time.monotonic() - started < 15
    assert all(process.poll() is not None for process in survivors.values())


def test_a_process_killed_by_a_signal_gives_128_plus_the_signal(monkeypatch):
    monkeypatch.setattr(run_demo, "POLL_INTERVAL", 0.05)
    killed = sleeper()
    killed.kill()
    killed.wait()
    other = sleeper()
    assert run_demo.supervise({"qcluster": killed, "runserver": other}) == 128 + 9
    assert other.poll() is not None


def test_ctrl_c_stops_everything_and_exits_0(monkeypatch):
    processes = {"qcluster": sleeper(), "runserver": sleeper()}

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    # Only run_demo's clock: subprocess waits with time.sleep too.
    monkeypatch.setattr(run_demo, "time", SimpleNamespace(sleep=interrupted))
    assert run_demo.supervise(processes) == 0
    assert all(process.poll() is not None for process in processes.values())


def test_the_real_runserver_on_a_port_in_use_fails_the_demo(tmp_path, monkeypatch, capfd):
    """The case that used to exit 0: manage.py runserver cannot bind, the demo says so."""
    monkeypatch.setattr(run_demo, "POLL_INTERVAL", 0.1)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    monkeypatch.delenv("REDIS_URL", raising=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        runserver = subprocess.Popen(  # noqa: S603 - this repository's manage.py
            [sys.executable, run_demo.MANAGE, "runserver", "--noreload", f"127.0.0.1:{port}"]
        )
        status = run_demo.supervise({"qcluster": sleeper(), "runserver": runserver})
    assert status != 0
    err = capfd.readouterr().err
    assert "run_demo: runserver exited with status" in err


def _processes_with(marker: str) -> list[int]:
    """Pids of the processes whose environment holds ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    pids.append(int(entry.name))
            except OSError:  # gone, or not ours to read
                continue
    return pids


def _ctrl_c_on_the_terminal(pid: int) -> None:
    os.killpg(pid, signal.SIGINT)  # a terminal signals its whole foreground group


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find the processes")
@pytest.mark.parametrize(
    "stop",
    [
        _ctrl_c_on_the_terminal,
        lambda pid: os.kill(pid, signal.SIGTERM),  # kill
        lambda pid: os.kill(pid, signal.SIGHUP),  # the terminal closed
    ],
    ids=["ctrl-c", "sigterm", "sighup"],
)
def test_stopping_the_demo_stops_the_real_cluster_and_its_workers(tmp_path, stop):
    """The supervisor stops every process, and no worker of the cluster outlives the demo
    (each runs in a session of its own, so nothing else would stop it)."""
    database = tmp_path / "demo.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "Q_WORKERS": "2"}
    env.pop("REDIS_URL", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the example project's own settings
    subprocess.run(  # noqa: S603 - this repository's manage.py
        [sys.executable, run_demo.MANAGE, "migrate", "--no-input", "-v", "0"], env=env, check=True
    )
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    demo = subprocess.Popen(  # noqa: S603 - this repository's run_demo.py
        [sys.executable, run_demo.__file__, "--no-fakes", "--port", str(port)],
        env=env,
        start_new_session=True,
        # As in a terminal: a background job of a shell would ignore SIGINT.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        # The supervisor, runserver, and the cluster with its sentinel, monitor and workers.
        while len(_processes_with(str(database))) < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_processes_with(str(database))) >= 6, "the demo did not start"
        stop(demo.pid)
        assert demo.wait(timeout=30) == 0
        time.sleep(1)
        assert _processes_with(str(database)) == []
    finally:
        for pid in _processes_with(str(database)):
            os.kill(pid, signal.SIGKILL)
