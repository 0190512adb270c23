"""The one error the drift command reports as bad input (exit code 2): it names the problem and the fix."""


class DriftInputError(Exception):
    pass
