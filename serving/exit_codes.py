"""Every command's exit codes with what each means: the commands return these members, and the
documentation's tables are generated from them (docs_reference/exit_codes.py)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """An exit code and its meaning, as a person reading the documentation needs it."""

    meaning: str

    def __new__(cls, code: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        return member


class Serve(ExitCode):
    """`python -m serving serve` (the image's command): start-up problems stop it with one line on stderr."""

    STOPPED = 0, "Stopped cleanly (SIGTERM or SIGINT)"
    MODEL = 1, "The model is missing or cannot be loaded (said before anything is served, and before a port error)"
    SETTINGS = 2, "A setting or argument is invalid; the line names the variable (and its flag, if it has one)"
    WORKER_MODEL = 3, "A worker could not load the model after start-up (e.g. the file changed)"
    LISTEN = (
        4,
        (
            "The port cannot be listened on (in use, no permission), or with several workers the metrics "
            "directory cannot be made (`SERVING_METRICS_DIR`)"
        ),
    )


class Batch(ExitCode):
    """`python -m serving batch`."""

    SCORED = 0, "Every row scored, or set aside into the errors file with `--on-error skip`"
    FAILED = (
        1,
        (
            "A bad row (without `--on-error skip`), an input that cannot be read or a model that cannot be "
            "loaded; the line names it, and no output is written"
        ),
    )
    SETTINGS = 2, "A setting or argument is invalid"
    STOPPED = 128, "Stopped by a signal: 128 + its number (143 for SIGTERM, 130 for Ctrl-C); no output written"


class Drift(ExitCode):
    """`python -m serving drift`."""

    NO_DRIFT = 0, "No column and not the predictions drifted past their threshold"
    DRIFT = 1, "Drift past a threshold in a column or the predictions; stderr names them"
    BAD_INPUT = 2, "Bad input (source, period, model, thresholds, too few captured rows): one line saying what"


class Import(ExitCode):
    """`python -m importer`."""

    WROTE = 0, "The model was converted, checked and written; the last line is the `pulumi config set` to pin it"
    REFUSED = (
        2,
        (
            "The model cannot be imported: one line naming the step (load, convert, check, write) and the fix; "
            "nothing is written"
        ),
    )
