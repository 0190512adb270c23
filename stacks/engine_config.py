"""Every key a stack sets in a namespace, as the engine passes it: the one private Pulumi hook of the program.

`pulumi.Config` answers only for keys asked by name, and an unknown key (a typo) must be reported, so the
program lists what the engine passed. `tests/test_private_hooks.py` fails loudly when an upgrade moves it.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi


def namespace_values(namespace: str) -> dict[str, Any]:
    """`{key: value}` for each `<namespace>:key`; structured values (and true/false/numbers) decoded from JSON."""
    # pulumi.runtime offers no public "list all keys"; CONFIG and get_config_env hold what the engine passed.
    raw: dict[str, str] = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    prefix = namespace + ":"
    values: dict[str, Any] = {}
    for full_key, text in raw.items():
        if full_key.startswith(prefix):
            try:
                values[full_key[len(prefix) :]] = json.loads(text)
            except ValueError:
                values[full_key[len(prefix) :]] = text  # a plain string such as `westeurope`
    return values
