"""``aimc spec``: print the resolved chip description."""

from __future__ import annotations

import argparse
import json

from archmodel.spec import array_mvm_cycles, array_mvm_latency_ns
from mapping.cli.common import COMMANDS, add_arch, resolve_arch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "spec",
        help=COMMANDS["spec"][1],
        description="Load a chip description (preset or YAML), validate it and print it resolved, "
        "with its hash and a few derived figures (as YAML comments, so that the output is itself a chip "
        "description: 'aimc spec --arch fig11 > my.yaml; aimc spec --arch my.yaml' prints the same hash; "
        "--no-sources drops the source notes, which are part of the hash).",
    )
    add_arch(p)
    p.add_argument("--format", choices=("yaml", "json"), default="yaml", help="output format (default: yaml)")
    p.add_argument("--no-sources", action="store_true", help="leave out the per-key source notes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = resolve_arch(args)
    data = spec.model_dump(mode="json")
    if args.no_sources:
        for section in data.values():
            if isinstance(section, dict):
                section.pop("sources", None)
    derived = {
        "spec_hash": spec.spec_hash,
        "tiles_per_chip": spec.tile_grid.tiles,
        "arrays_per_chip": spec.tile_grid.tiles * spec.array.arrays_per_tile,
        "weights_per_array": spec.array.rows * spec.array.cols,
        "adc_full_scale_ua": spec.adc_full_scale_ua,
        "array_mvm_latency_ns": array_mvm_latency_ns(spec),
        "array_mvm_cycles": array_mvm_cycles(spec),
    }
    if args.format == "json":
        print(json.dumps({"chip": data, "derived": derived}, indent=2))
    else:
        import yaml

        # the derived figures are comments: the printed text is itself a chip description that
        # loads back as the same description with the same hash (without --no-sources)
        print(f"# chip description '{spec.name}' (hash {spec.spec_hash}), resolved")
        print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())
        print("# derived (not part of the description)")
        for line in yaml.safe_dump(derived, sort_keys=False).rstrip().splitlines():
            print(f"# {line}")
    return 0
