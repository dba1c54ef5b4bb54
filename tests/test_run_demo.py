"""example_project/run_demo.py: when one of the demo's processes dies (the port is in use, the
database is not migrated), the others are stopped, the dead one is named and the exit status is
not 0; Ctrl-C stops everything with 0. The snippet it prints, run as a user would on ports other
than the defaults, ends in a delivered message whose report succeeded."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from example_project import run_demo
from feedback_app.testing.carrier import unreachable
from feedback_app.testing.demo_fakes import CarrierTwilioFake

REPOSITORY = Path(run_demo.MANAGE).parent

#: Stands in for manage.py: each command prints its name and the demo's settings, then behaves as
#: FAKE_<COMMAND> says; "run" listens on the port it was given, as the servers do.
FAKE_MANAGE = textwrap.dedent(
    """
    import os, socket, sys, time
    command = sys.argv[1]
    behaviour = os.environ.get("FAKE_" + command.upper(), "run")
    settings = ("DEBUG", "FEEDBACK_FAKES_URL", "FEEDBACK_PUBLIC_URL")
    line = " ".join(["started", command, *(str(os.environ.get(name)) for name in settings)])
    os.write(1, (line + "\\n").encode())  # one write: the processes share the demo's stdout
    if behaviour == "port-in-use":
        print("Error: That port is already in use.", file=sys.stderr, flush=True)
        sys.exit(1)
    if behaviour == "exit-0":
        sys.exit(0)
    if behaviour == "crash":
        sys.exit(3)
    if behaviour == "crash-in-2s":
        time.sleep(2)
        sys.exit(3)
    if command == "runserver":
        port = sys.argv[-1].rsplit(":", 1)[1]
    elif command == "feedback_fakes":
        port = sys.argv[sys.argv.index("--port") + 1]
    else:
        port = None
    server = socket.socket()
    try:
        server.bind(("127.0.0.1", int(port)))
        server.listen()
    except (TypeError, OSError):  # no port, or a default port in use here: not listening
        pass
    time.sleep(60)
    """
)


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


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


def test_the_processes_run_with_debug_and_the_urls_of_the_chosen_ports(
    fake_manage, monkeypatch, capfd
):
    """Once both servers listen (here after their "started" lines), the demo prints the admin
    URL and the snippet with the chosen ports."""
    monkeypatch.delenv("DEBUG", raising=False)
    monkeypatch.setenv("FAKE_QCLUSTER", "crash-in-2s")  # ends the demo
    port, fakes_port = _free_ports(2)
    run_demo.main(["--port", str(port), "--fakes-port", str(fakes_port)])
    out = capfd.readouterr().out
    fakes_url, public_url = f"http://127.0.0.1:{fakes_port}", f"http://127.0.0.1:{port}"
    # Sends from the admin or the API (runserver, the cluster) get callbacks on the chosen port.
    for command in ("feedback_fakes", "qcluster", "runserver"):
        assert f"started {command} 1 {fakes_url} {public_url}" in out
    announced = out.index(f"Admin: {public_url}/admin/")
    assert announced > max(out.index("started runserver"), out.index("started feedback_fakes"))
    assert f"  FEEDBACK_FAKES_URL={fakes_url} FEEDBACK_PUBLIC_URL={public_url} " in out[announced:]


def test_nothing_is_announced_while_a_server_does_not_listen(fake_manage, monkeypatch, capfd):
    monkeypatch.setenv("FAKE_FEEDBACK_FAKES", "crash-in-2s")  # started, but never listening
    port, fakes_port = _free_ports(2)
    assert run_demo.main(["--port", str(port), "--fakes-port", str(fakes_port)]) == 3
    assert "Admin:" not in capfd.readouterr().out


def test_without_the_fakes_no_fake_url_is_set(fake_manage, monkeypatch, capfd):
    monkeypatch.delenv("DEBUG", raising=False)
    monkeypatch.setenv("FAKE_QCLUSTER", "crash-in-2s")
    (port,) = _free_ports(1)
    run_demo.main(["--no-fakes", "--port", str(port)])
    out = capfd.readouterr().out
    assert "started runserver 1 None None" in out
    assert f"Admin: http://127.0.0.1:{port}/admin/" in out
    assert "FEEDBACK_FAKES_URL" not in out


def test_debug_off_in_the_environment_is_kept_and_runserver_still_serves_static_files(
    fake_manage, monkeypatch
):
    monkeypatch.setenv("DEBUG", "0")
    started = []
    real_popen = subprocess.Popen

    def popen(args, **kwargs):
        started.append((args, kwargs["env"]["DEBUG"]))
        return real_popen([sys.executable, "-c", "import sys; sys.exit(3)"])

    monkeypatch.setattr(run_demo.subprocess, "Popen", popen)
    run_demo.main(["--no-fakes"])
    runserver = next(args for args, _ in started if "runserver" in args)
    assert "--insecure" in runserver
    assert {debug for _, debug in started} == {"0"}


@pytest.mark.parametrize(
    ("host", "public"),
    [
        ("0.0.0.0", "127.0.0.1"),  # noqa: S104 - every address, as `make demo HOST=0.0.0.0`
        ("::", "127.0.0.1"),
        ("::1", "[::1]"),
        ("localhost", "localhost"),
    ],
)
def test_the_callback_url_reaches_runserver_on_whichever_address_it_listens(host, public):
    assert run_demo.fakes_env(host, 8101, 8866) == {
        "FEEDBACK_FAKES_URL": "http://127.0.0.1:8866",
        "FEEDBACK_PUBLIC_URL": f"http://{public}:8101",
    }


def test_the_snippet_sends_to_a_number_the_twilio_fake_always_delivers():
    assert not unreachable(run_demo.SNIPPET_TO, CarrierTwilioFake().undelivered_rate)


def test_the_readme_shows_the_snippet_the_demo_prints_for_the_default_ports(monkeypatch):
    monkeypatch.chdir(REPOSITORY)  # where `make demo` runs
    printed = run_demo.snippet(run_demo.fakes_env("127.0.0.1", 8000, 8765))
    python = run_demo._relative(sys.executable)
    assert (
        printed.replace(f" {python} ", " .venv/bin/python ")
        in (REPOSITORY / "README.md").read_text()
    )


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _printed_snippet(output: Path) -> str | None:
    """The indented lines after "Try it" in the demo's output, once printed."""
    lines = output.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if "Try it" in line), None)
    if start is None:
        return None
    snippet = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        snippet.append(line)
    return "\n".join(snippet) if snippet and not snippet[-1].endswith("\\") else None


def _outcome(database: Path) -> tuple[str, str, list[str]] | None:
    """(delivery status, feedback, states of its provider calls) of the one message, if any."""
    with contextlib.closing(sqlite3.connect(database, timeout=5)) as db:
        row = db.execute(
            "SELECT id, delivery_status, feedback FROM feedback_app_message"
        ).fetchone()
        if row is None:
            return None
        calls = db.execute(
            "SELECT state FROM feedback_app_providercall WHERE message_id = ?", (row[0],)
        ).fetchall()
    return row[1], row[2], [state for (state,) in calls]


def test_the_printed_snippet_delivers_and_reports_on_ports_other_than_the_defaults(tmp_path):
    """The issue's "done when": the demo on other ports, then the snippet it prints, run with
    bash from the repository as a user would -> delivered and its report succeeded in 10 s."""
    database = tmp_path / "demo.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}"}
    # The example project's own settings, as in a fresh shell.
    for name in ("REDIS_URL", "DJANGO_SETTINGS_MODULE", "DEBUG", *run_demo.fakes_env("", 0, 0)):
        env.pop(name, None)
    subprocess.run(  # noqa: S603 - this repository's manage.py
        [sys.executable, run_demo.MANAGE, "migrate", "--no-input", "-v", "0"], env=env, check=True
    )
    port, fakes_port = _free_ports(2)
    output = tmp_path / "demo.out"
    with output.open("w") as out, (tmp_path / "demo.err").open("w") as err:
        demo = subprocess.Popen(  # noqa: S603 - this repository's run_demo.py
            [
                sys.executable,
                run_demo.__file__,
                "--port",
                str(port),
                "--fakes-port",
                str(fakes_port),
            ],
            env=env,
            cwd=REPOSITORY,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not (_printed_snippet(output) and _listening(port) and _listening(fakes_port)):
            assert demo.poll() is None, (tmp_path / "demo.err").read_text()
            assert time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.2)
        snippet = _printed_snippet(output)
        assert f"FEEDBACK_PUBLIC_URL=http://127.0.0.1:{port} " in snippet

        subprocess.run(["bash", "-c", snippet], env=env, cwd=REPOSITORY, check=True)  # noqa: S603, S607
        # From the send (the snippet's own start-up is Django's, not the demo's).
        started = time.monotonic()
        outcome = None
        while outcome != ("delivered", "confirmed", ["succeeded"]):
            assert time.monotonic() - started < 10, (
                outcome,
                (tmp_path / "demo.err").read_text()[-3000:],
            )
            time.sleep(0.2)
            outcome = _outcome(database)
    finally:
        demo.terminate()  # stops the processes it started
        status = demo.wait(timeout=30)
    assert status == 0
