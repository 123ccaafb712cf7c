"""The ``mesa-jax`` command: ``compare`` (Mesa vs mesa_jax) and ``run`` (redirected script)."""

from __future__ import annotations

import argparse
import runpy
import sys

__all__ = ["main"]


def _cmd_run(args):
    from .redirect import install_permanently

    install_permanently()
    sys.argv = [args.script] + list(args.args)
    runpy.run_path(args.script, run_name="__main__")


def _cmd_compare(args):
    from ._compare import MODELS, compare_model, format_rows

    names = list(MODELS) if args.model == "all" else [args.model]
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"Mesa vs mesa_jax, same model, same process; {args.steps} timed steps "
          f"(median of 3 runs for mesa_jax); compile time reported separately.")
    for name in names:
        rows = compare_model(name, sizes, steps=args.steps, seed=args.seed)
        print(format_rows(rows))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="mesa-jax", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("compare", help="run Mesa and mesa_jax side by side")
    p.add_argument("--model", default="boltzmann", help="model name, or 'all'")
    p.add_argument("--sizes", default="1000,10000", help="comma-separated agent counts")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=_cmd_compare)
    r = sub.add_parser("run", help="run SCRIPT with `import mesa` resolved to mesa_jax")
    r.add_argument("script")
    r.add_argument("args", nargs=argparse.REMAINDER)
    r.set_defaults(func=_cmd_run)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
