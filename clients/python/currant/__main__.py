"""``python3 -m currant COMMAND``: commands that ship with the Python package.

    python3 -m currant bench --workers N --jobs N --warmup-percent P [...]

``bench`` runs currant-bench's workload with Python producer and worker
processes and prints the same table (``bench --help`` for the options).
"""

import sys


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "bench":
        from ._bench import main as bench

        return bench(rest)
    print(f"python3 -m currant: unknown command {command!r} (known: bench)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
