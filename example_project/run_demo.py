"""Run the demo's processes together: the provider fakes (optional), a django-q2 cluster and the
development server. Ctrl-C (or one of them exiting) stops them all. Used by ``make demo``.

The processes run with ``DEBUG`` on unless the environment says otherwise (the development
server then serves the admin's static files, and the aws_sms webhook trusts the fakes' SNS
certificate), and, with the fakes, with ``FEEDBACK_FAKES_URL`` and ``FEEDBACK_PUBLIC_URL`` for
the chosen ports, so every status callback reaches this server. The demo prints a shell command
that sends a message through the Twilio fake with the same two settings.

Exit status: 0 after Ctrl-C; when a process exits on its own (the port is in use, the database
is not migrated), its name on stderr and its exit status (1 if it exited with 0).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

MANAGE = str(Path(__file__).resolve().parent.parent / "manage.py")

#: The snippet's recipient: a number the Twilio fake always delivers (demo_fakes.py).
SNIPPET_TO = "+14155550123"

#: Seconds between looks at the processes.
POLL_INTERVAL = 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fakes-port", type=int, default=8765)
    parser.add_argument("--no-fakes", action="store_true", help="only the locmem provider")
    args = parser.parse_args(argv)

    env = {"DEBUG": "1", **os.environ}
    commands = []
    if not args.no_fakes:
        env.update(fakes_env(args.host, args.port, args.fakes_port))
        commands.append(["feedback_fakes", "--port", str(args.fakes_port)])
    runserver = ["runserver", "--noreload", f"{args.host}:{args.port}"]
    if env["DEBUG"] != "1":
        runserver.append("--insecure")  # still serve the admin's static files
    commands += [["qcluster"], runserver]

    # Each in a session of its own: Ctrl-C reaches only this supervisor, which stops each
    # process through its main pid. A django-q2 cluster whose workers get the signal too
    # (as a terminal's Ctrl-C sends it to the whole group) can hang while stopping.
    processes = {
        command[0]: subprocess.Popen(  # noqa: S603
            [sys.executable, MANAGE, *command], env=env, start_new_session=True
        )
        for command in commands
    }
    host = _reachable(args.host)

    def announce() -> None:
        print(f"Admin: http://{args.host}:{args.port}/admin/  (Ctrl-C stops everything)")
        if not args.no_fakes:
            print(
                f"All nine providers talk to the fakes on {env['FEEDBACK_FAKES_URL']}. "
                f"Try it (in another terminal, from this directory):\n{snippet(env)}"
            )
        sys.stdout.flush()

    ports = [args.port] if args.no_fakes else [args.port, args.fakes_port]
    return supervise(processes, announce, [(host, port) for port in ports])


def fakes_env(host: str, port: int, fakes_port: int) -> dict[str, str]:
    """The settings that point the backends at the fakes and the fakes' callbacks at
    runserver (on 127.0.0.1 when it listens on every address)."""
    public_host = _reachable(host)
    if ":" in public_host:
        public_host = f"[{public_host}]"  # an IPv6 address in a URL
    return {
        "FEEDBACK_FAKES_URL": f"http://127.0.0.1:{fakes_port}",
        "FEEDBACK_PUBLIC_URL": f"http://{public_host}:{port}",
    }


def _reachable(host: str) -> str:
    """The address to reach a server listening on ``host`` from this machine."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104


def _listening(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=POLL_INTERVAL).close()
    except OSError:
        return False
    return True


def snippet(env: dict[str, str]) -> str:
    """A shell command that sends a text message through the Twilio fake and confirms it, with
    the demo's settings: it turns ``delivered`` within seconds and its report ``succeeded``.
    The database settings are the caller's own environment, as they were for the demo."""
    code = (
        "import feedback_app; "
        f'm = feedback_app.send(provider="twilio", to="{SNIPPET_TO}", body="Your code is 123456"); '
        "feedback_app.confirm(m)"
    )
    words = [
        *(f"{name}={env[name]}" for name in ("FEEDBACK_FAKES_URL", "FEEDBACK_PUBLIC_URL")),
        _relative(sys.executable),
        _relative(MANAGE),
        "shell",
        "-c",
    ]
    return f"  {shlex.join(words)} \\\n    {shlex.quote(code)}"


def _relative(path: str) -> str:
    """``path`` relative to the working directory when it lies below it, as a user types it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def supervise(
    processes: dict[str, subprocess.Popen],
    announce: Callable[[], None] | None = None,
    addresses: Iterable[tuple[str, int]] = (),
) -> int:
    """Wait until Ctrl-C or until one process exits, then stop the others; ``announce()`` once
    every address accepts connections (the servers are up: what it prints comes after their
    start-up banners).

    Returns 0 after Ctrl-C; otherwise the exit status of the process that ended (1 if that was
    0: the demo stopped without being asked to; 128 + N if signal N killed it), after naming it
    on stderr.
    """
    status = 0
    # SIGTERM (kill) and SIGHUP (the terminal closed) stop everything as Ctrl-C does: the
    # processes run in sessions of their own, so nothing else would stop them.
    previous = {
        signum: signal.signal(signum, _interrupt) for signum in (signal.SIGTERM, signal.SIGHUP)
    }
    addresses = list(addresses)
    try:
        while True:
            if announce is not None and all(map(_listening, addresses)):
                announce()
                announce = None
            ended = [(name, p.poll()) for name, p in processes.items() if p.poll() is not None]
            if ended:
                name, code = ended[0]
                print(
                    f"run_demo: {name} exited with status {code}; stopping the others.",
                    file=sys.stderr,
                    flush=True,
                )
                # Killed by a signal: the shell's 128 + signal number.
                status = 128 - code if code < 0 else code or 1
                break
            time.sleep(POLL_INTERVAL)
    except KeyboardInterrupt:
        status = 0
    finally:
        _stop(processes.values())
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status


def _stop(processes: Iterable[subprocess.Popen]) -> None:
    """SIGTERM to each main process (a cluster stops its own workers); SIGKILL to the whole
    process group of any still running after 15 s, so no worker is left behind."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.terminate()
    for process in running:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


if __name__ == "__main__":
    sys.exit(main())
