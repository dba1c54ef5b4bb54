"""Run the demo's processes together: the provider fakes (optional), a django-q2 cluster and the
development server. Ctrl-C (or one of them exiting) stops them all. Used by ``make demo``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

MANAGE = str(Path(__file__).resolve().parent.parent / "manage.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fakes-port", type=int, default=8765)
    parser.add_argument("--no-fakes", action="store_true", help="only the locmem provider")
    args = parser.parse_args()

    env = dict(os.environ)
    commands = []
    if not args.no_fakes:
        env["FEEDBACK_FAKES_URL"] = f"http://127.0.0.1:{args.fakes_port}"
        env["FEEDBACK_PUBLIC_URL"] = f"http://{args.host}:{args.port}"
        commands.append(["feedback_fakes", "--port", str(args.fakes_port)])
    commands += [["qcluster"], ["runserver", "--noreload", f"{args.host}:{args.port}"]]

    processes = [
        subprocess.Popen([sys.executable, MANAGE, *command], env=env)  # noqa: S603
        for command in commands
    ]
    print(f"Admin: http://{args.host}:{args.port}/admin/  (Ctrl-C stops everything)", flush=True)
    if not args.no_fakes:
        print(
            f"twilio, aws_sms and chime talk to the fakes on {env['FEEDBACK_FAKES_URL']}",
            flush=True,
        )
    try:
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
