"""`python -m sweeps.data fetch mnist [fashion_mnist ...]`: put datasets in the cache.

Used on each node of a cluster at set-up, so trials never download.
"""

import argparse
import sys

from sweeps.data.sources import DATASETS, DataUnavailable, default_cache_dir, load_dataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweeps.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="load each dataset from the first source that has it and cache it")
    fetch.add_argument("names", nargs="+", choices=DATASETS)
    fetch.add_argument("--cache-dir", default=None, help=f"cache folder (default {default_cache_dir()})")
    fetch.add_argument("--data-dir", default=None, help="a folder holding the four IDX files")
    args = parser.parse_args(argv)
    try:
        for name in args.names:
            load_dataset(name, cache_dir=args.cache_dir, data_dir=args.data_dir)
    except DataUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
