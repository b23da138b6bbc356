"""`python -m zoo.export`: re-export shipped models from their `.keras` weights, without retraining.

    python -m zoo.export --stale --dry-run     # which shipped versions are stale, and why
    python -m zoo.export --stale               # re-export every one of them
    python -m zoo.export adding_lstm           # re-export one model
"""

import argparse
import sys

from zoo.export._reexport import reexport, stale_models


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m zoo.export", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="shipped models to re-export")
    parser.add_argument("--stale", action="store_true", help="every shipped model whose served version is stale")
    parser.add_argument("--dry-run", action="store_true", help="only list what would be re-exported")
    parser.add_argument("--keep-old", action="store_true", help="keep the replaced version folders")
    parser.add_argument("--models-dir", default=None, help="default: $RNN_ZOO_MODELS or saved_models/")
    args = parser.parse_args(argv)
    if bool(args.names) == args.stale:
        parser.error("name the models to re-export, or pass --stale (not both)")
    todo = stale_models(args.models_dir) if args.stale else {name: ["asked for"] for name in args.names}
    for name, reasons in todo.items():
        if args.dry_run:
            print(f"{name}: {'; '.join(reasons)}")
            continue
        print(f"{name}: {'; '.join(reasons)} -> {reexport(name, args.models_dir, keep_old=args.keep_old)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
