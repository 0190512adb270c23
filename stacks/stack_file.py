"""A stack file whose shape is wrong, said in one line: invalid YAML, settings outside `config:`, keys without
their namespace. Otherwise these read as "mlserve:targets: required", which names the symptom, not the mistake."""

from __future__ import annotations

from pathlib import Path

import yaml


def stack_file_problems(path: Path, namespace: str) -> list[str]:
    """Problems with the file's shape (not its values: stacks.config checks those); [] when it has none."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError:
        return []  # Pulumi says it is missing
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        return [f"{path.name}{where}: not valid YAML: {problem}"]
    example = f"a line `config:`, then `  {namespace}:targets: [aci]` and the others indented under it"
    if not isinstance(document, dict) or document.get("config") is None:
        stray = [str(k) for k in document or {} if ":" in str(k)] if isinstance(document, dict) else []
        if stray:
            return [f"{path.name}: {', '.join(stray)} must be indented under `config:` ({example})"]
        return [f"{path.name}: no `config:` section; the stack's settings go under it ({example})"]
    config = document["config"]
    if not isinstance(config, dict):
        return [f"{path.name}: `config:` must map keys to values ({example})"]
    return [
        f"{key} in {path.name}: a setting needs its namespace; write {namespace}:{key}"
        for key in map(str, config)
        if ":" not in key
    ]
