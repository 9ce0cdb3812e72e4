"""`python -m bionic connectome {fetch,stats,build-bundled}`."""

from __future__ import annotations

import argparse
import sys

from bionic.errors import BionicError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bionic connectome",
                                     description="The MICrONS V1 column: get a snapshot, inspect it.")
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("fetch", help="write a snapshot from CAVE or from the public Allen release")
    fetch.add_argument("--source", choices=["cave", "allen-v1718"], required=True)
    fetch.add_argument("--version", type=int, default=None,
                       help="materialization version (cave; default 1300). allen-v1718 is always 1718")
    fetch.add_argument("--datastack", default="minnie65_public", help="CAVE datastack (cave only)")
    fetch.add_argument("--out", required=True, help="snapshot folder to write")
    fetch.add_argument("--cache", default=None, help="download cache (allen-v1718; default ~/.cache/bionic)")
    fetch.add_argument("--quiet", action="store_true", help="no download progress")

    stats = sub.add_parser("stats", help="cells per group and type, block connectivity, heatmap")
    stats.add_argument("--snapshot", default=None, help="snapshot folder (default: the bundled v1300 column)")
    stats.add_argument("--out", default=None, help="write the block heatmap here (PNG)")
    stats.add_argument("--min-synapses", type=int, default=1)

    build = sub.add_parser("build-bundled", help="rebuild the bundled snapshot from the shared microns_column data")
    build.add_argument("--source-dir", required=True, help="folder with cells.csv, edges_l5et_to_column.csv, ...")
    build.add_argument("--out", required=True, help="snapshot folder (bionic/connectome/data/v1300 to replace it)")
    build.add_argument("--seed", type=int, default=0)
    return parser


def _fetch(args) -> int:
    if args.source == "cave":
        from bionic.connectome.cave import fetch_cave

        out = fetch_cave(args.out, version=1300 if args.version is None else args.version, datastack=args.datastack)
    else:
        from bionic.connectome.allen import VERSION, fetch_allen

        if args.version not in (None, VERSION):
            raise BionicError(f"--source allen-v1718 is materialization {VERSION}; drop --version {args.version} "
                              "or use --source cave")
        out = fetch_allen(args.out, cache=args.cache, progress=not args.quiet)
    from bionic.connectome.snapshot import load_column

    column = load_column(out)
    counts = column.meta["counts"]
    print(f"wrote {out}: {counts['cells']} cells, {counts['edges']} connections, {counts['synapses']} synapses "
          f"(v{column.meta['materialization_version']}); use it with --snapshot {out} "
          f"(or the network's `snapshot` setting)")
    return 0


def _stats(args) -> int:
    from bionic.connectome.snapshot import load_column
    from bionic.connectome.stats import draw_heatmap, format_stats

    column = load_column(args.snapshot)
    print(format_stats(column, min_synapses=args.min_synapses))
    if args.out:
        print(f"\nheatmap: {draw_heatmap(column, args.out, min_synapses=args.min_synapses)}")
    return 0


def _build(args) -> int:
    from bionic.connectome.bundled import build_bundled
    from bionic.connectome.snapshot import load_column

    out = build_bundled(args.source_dir, args.out, seed=args.seed)
    counts = load_column(out).meta["counts"]
    print(f"wrote {out}: {counts['cells']} cells, {counts['edges']} connections "
          f"({counts['edges_measured']} measured, {counts['edges_sampled']} sampled), {counts['synapses']} synapses")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"fetch": _fetch, "stats": _stats, "build-bundled": _build}[args.command](args)
    except BionicError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
