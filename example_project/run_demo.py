"""Run the demo's processes together: the provider fakes (optional), a django-q2 cluster and the
development server. Ctrl-C (or one of them exiting) stops them all. Used by ``make demo``.

Exit status: 0 after Ctrl-C; when a process exits on its own (the port is in use, the database
is not migrated), its name on stderr and its exit status (1 if it exited with 0).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

MANAGE = str(Path(__file__).resolve().parent.parent / "manage.py")

#: Seconds between looks at the processes.
POLL_INTERVAL = 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fakes-port", type=int, default=8765)
    parser.add_argument("--no-fakes", action="store_true", help="only the locmem provider")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    commands = []
    if not args.no_fakes:
        env["FEEDBACK_FAKES_URL"] = f"http://127.0.0.1:{args.fakes_port}"
        env["FEEDBACK_PUBLIC_URL"] = f"http://{args.host}:{args.port}"
        commands.append(["feedback_fakes", "--port", str(args.fakes_port)])
    commands += [["qcluster"], ["runserver", "--noreload", f"{args.host}:{args.port}"]]

    # Each in a session of its own: Ctrl-C reaches only this supervisor, which stops each
    # process through its main pid. A django-q2 cluster whose workers get the signal too
    # (as a terminal's Ctrl-C sends it to the whole group) can hang while stopping.
    processes = {
        command[0]: subprocess.Popen(  # noqa: S603
            [sys.executable, MANAGE, *command], env=env, start_new_session=True
        )
        for command in commands
    }
    print(f"Admin: http://{args.host}:{args.port}/admin/  (Ctrl-C stops everything)", flush=True)
    if not args.no_fakes:
        print(
            f"twilio, aws_sms and chime talk to the fakes on {env['FEEDBACK_FAKES_URL']}",
            flush=True,
        )
    return supervise(processes)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def supervise(processes: dict[str, subprocess.Popen]) -> int:
    """Wait until Ctrl-C or until one process exits, then stop the others.

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
    try:
        while True:
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
