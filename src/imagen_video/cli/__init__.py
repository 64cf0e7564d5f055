"""The `imagen-video` command line: thin subcommands over library functions.

Every module in this package that defines ``register(subparsers)`` contributes one subcommand; the
module's ``register`` adds its parser and sets ``func`` to a callable taking the parsed namespace and
returning an exit code. Modules are discovered, so adding a subcommand touches no shared file.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import pkgutil
import sys
from collections.abc import Iterator

from imagen_video import __version__


class UserError(Exception):
    """A problem with the user's input: printed as one line on stderr, exit status 2."""


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM so that cleanup runs as for Ctrl-C (exit status 143)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def _signal_handlers() -> Iterator[None]:
    """SIGTERM unwinds like SIGINT; SIGXFSZ is ignored so a file-size limit is an EFBIG error."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = {signal.SIGTERM: _on_sigterm}
    if hasattr(signal, "SIGXFSZ"):
        wanted[signal.SIGXFSZ] = signal.SIG_IGN
    previous = {sig: signal.signal(sig, handler) for sig, handler in wanted.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with one subparser per discovered subcommand module."""
    parser = argparse.ArgumentParser(
        prog="imagen-video",
        description="Imagen Video: text-to-video by a cascade of video diffusion models (Ho et al. 2022).",
    )
    parser.add_argument("--version", action="version", version=f"imagen-video {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `imagen-video` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        with _signal_handlers():
            return int(args.func(args) or 0)
    except UserError as err:
        print(f"imagen-video {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file or disk fault: one line naming the path and the cause
        from imagen_video.io_safety import describe_os_error

        print(f"imagen-video {args.command}: error: {describe_os_error(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"imagen-video {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"imagen-video {args.command}: terminated", file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
