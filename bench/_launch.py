"""``cupola serve`` with a chosen uvicorn event loop and HTTP parser.

``python -m bench._launch --loop asyncio --http h11 serve --config ... --port ...`` runs the
real ``cupola serve`` command; only the ``loop``/``http`` arguments of ``uvicorn.run`` change.
"""

from __future__ import annotations

import argparse
import functools
import sys

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench._launch")
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    parser.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"])
    args, rest = parser.parse_known_args()
    uvicorn.run = functools.partial(uvicorn.run, loop=args.loop, http=args.http)

    from cupola.cli.main import main as cupola_main

    sys.argv = ["cupola", *rest]
    cupola_main()


if __name__ == "__main__":
    main()
