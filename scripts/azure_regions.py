"""Azure's regions against the list the stacks are checked with (stacks/regions.py AZURE_REGIONS).

    az account list-locations --query "[?metadata.regionType=='Physical'].name" --output json > locations.json
    python scripts/azure_regions.py locations.json

Exits 1 naming each region the subscription lists that AZURE_REGIONS lacks (a stack naming it would be
refused), 0 when none is missing. Regions the list has beyond the subscription's (other clouds', or
ones the subscription cannot see) are left alone. The weekly Upkeep workflow runs it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stacks.regions import AZURE_REGIONS


def missing(listed: object) -> list[str]:
    """The names in `az account list-locations` JSON output (names or location objects) not in AZURE_REGIONS."""
    if not isinstance(listed, list):
        raise ValueError("expected a JSON list of region names (or of location objects with a name)")
    names = [item.get("name") if isinstance(item, dict) else item for item in listed]
    if not all(isinstance(name, str) and name for name in names):
        raise ValueError("expected a JSON list of region names (or of location objects with a name)")
    return sorted({name.lower() for name in names} - AZURE_REGIONS)  # type: ignore[union-attr]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/azure_regions.py", description=__doc__.split("\n", 1)[0])
    parser.add_argument("locations", type=Path, help="`az account list-locations ... --output json`")
    args = parser.parse_args(argv)
    try:
        listed = json.loads(args.locations.read_text())
        new = missing(listed)
    except (OSError, ValueError) as error:
        print(f"error: {args.locations}: {error}", file=sys.stderr)
        return 2
    if new:
        print(f"stacks/regions.py: AZURE_REGIONS lacks {', '.join(new)}, which Azure lists: add them, or a stack "
              "naming one is refused", file=sys.stderr)  # fmt: skip
        return 1
    print(f"stacks/regions.py: AZURE_REGIONS has all {len(listed)} regions Azure lists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
