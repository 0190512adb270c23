"""Bad input (exit code 2, Drift.BAD_INPUT): one error whose message names the problem and the fix."""


class DriftInputError(Exception):
    pass


def missing_library(error: ImportError) -> str:
    return (
        f"the drift report needs {(error.name or str(error)).split('.')[0]}, which the serving image leaves out: "
        "pip install --require-hashes -r serving/requirements-drift.txt"
    )
