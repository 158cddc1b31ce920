"""`python -m dynia` and the `dynia` console script.

The CLI is imported inside `main` so that a Ctrl-C at any moment, start-up imports included,
ends as one line and exit 130, never a traceback.
"""
import sys


def main() -> None:
    try:
        from .cli.main import run

        run()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
