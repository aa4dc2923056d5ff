"""``diffariff studio``: serve the studio page (:mod:`diffariff.studio`) on this machine.

The bundle is checked from its manifest before the server starts (one line for a bad one), then
loaded once in the background while the page is already served. The server binds 127.0.0.1 unless
``--host`` says otherwise; it needs no network.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

from ..errors import InputError, MissingDependencyError

EXAMPLES = """examples:
  diffariff studio                          # http://127.0.0.1:7860 with the packaged models
  diffariff studio --bundle my_bundle --port 8000
  diffariff studio --max-seconds 60         # refuse tracks and uploads longer than 60 s

Open the printed address in a browser. Ctrl-C stops the server and removes its temporary files."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("studio", help="serve the studio web page (build a track stem by stem)",
                              epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                              description="Serve a local web page where a producer builds a track stem by stem.")
    p.add_argument("--bundle", default="default", help="model bundle folder (default: the packaged bundle)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--max-seconds", type=float, default=120.0,
                   help="longest track or upload in seconds (default 120)")
    p.add_argument("--max-upload-mb", type=float, default=100.0, help="largest upload in MB (default 100)")
    p.set_defaults(func=run_studio)


def run_studio(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_seconds <= 0 or args.max_upload_mb <= 0:
        raise InputError("--max-seconds and --max-upload-mb must be > 0")
    try:
        import python_multipart  # noqa: F401  (form uploads)
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(f"the studio needs the Python package {exc.name!r}: "
                                     "pip install -e '.[studio]' (or run `make studio`)") from None
    from ..bundle import open_bundle
    from ..studio.server import serve
    from ..studio.uploads import Limits

    open_bundle(args.bundle)
    if not _is_loopback(args.host):
        print(f"diffariff studio: warning: binding {args.host}: other machines on the network can reach "
              "the studio (it has no login)", file=sys.stderr)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"diffariff studio: http://{shown}:{args.port}/  (Ctrl-C to stop)", flush=True)
    limits = Limits(max_seconds=float(args.max_seconds), max_upload_bytes=int(args.max_upload_mb * 1e6))
    serve(args.bundle, args.host, args.port, limits=limits)
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
