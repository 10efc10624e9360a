"""`python -m relmodel.tasks.service [--host H] [--port P]`: run the data-run service."""

from __future__ import annotations

import argparse
import logging

from relmodel.tasks.service.main import serve


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the relmodel data-run service.")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(args.host, args.port, args.log_level)


if __name__ == "__main__":
    main()
