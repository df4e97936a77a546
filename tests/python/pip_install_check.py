"""`pip install --no-build-isolation .` builds currant through meson-python
and installs a package that works: a round trip from the installed copy.

Run by meson test (suite python-install) as:
    /usr/bin/python3 tests/python/pip_install_check.py SOURCE_DIR
It installs into a temporary directory (--target), never into the system.
"""

import os
import subprocess
import sys
import tempfile


def main() -> int:
    source = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="currant-pip-") as target:
        build = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
             "--disable-pip-version-check", "--target", target, source],
            capture_output=True, text=True)
        if build.returncode != 0:
            print(build.stdout[-4000:], build.stderr[-4000:], sep="\n")
            print("pip install failed")
            return 1
        name = f"pip-check-{os.getpid()}"
        script = f"""
import currant
q = currant.Queue.create({name!r}, slots=64, payload_bytes=64)
try:
    q.declare_entrypoint("e")
    job_id = q.enqueue("e", b"hi\\x00there")
    jobs = q.dequeue(["e"], batch_size=1, timeout=5)
    assert len(jobs) == 1 and jobs[0].id == job_id and bytes(jobs[0].payload) == b"hi\\x00there"
    q.ack(jobs[0])
    assert currant.__file__.startswith({target!r}), currant.__file__
finally:
    q.close()
    currant.Queue.remove({name!r})
"""
        run = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": target},
                             capture_output=True, text=True)
        if run.returncode != 0:
            print(run.stdout, run.stderr, sep="\n")
            print("the installed package failed its round trip")
            return 1
    print("pip install: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
