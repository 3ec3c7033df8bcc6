"""The command line: parses options, calls the library, renders what comes back."""

from slmscope.cli import catalog, doctor, results, route, serve, sweep  # noqa: F401  (they add commands)
from slmscope.cli.app import app


def main() -> None:  # pragma: no cover
    app()


__all__ = ["app", "main"]
