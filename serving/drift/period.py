"""The report's period: [since, until) in UTC, and the capture layout's hour folders that cover it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from serving.drift.problems import DriftInputError

DEFAULT_DAYS = 7.0


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.since <= moment < self.until

    def hours(self) -> Iterator[str]:
        """`YYYY/MM/DD/HH` of every hour that overlaps the period (SageMaker's capture folders)."""
        hour = self.since.replace(minute=0, second=0, microsecond=0)
        while hour < self.until:
            yield hour.strftime("%Y/%m/%d/%H")
            hour += timedelta(hours=1)

    def describe(self) -> str:
        return f"{iso(self.since)} to {iso(self.until)}"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_moment(text: str, option: str) -> datetime:
    """An ISO date or date-time; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise DriftInputError(
            f"{option} {text!r}: expected a UTC date or time such as 2026-12-01 or 2026-12-01T06:00"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def period_from(since: str | None, until: str | None, days: float | None, now: datetime | None = None) -> Period:
    if since is not None and days is not None:
        raise DriftInputError("give --since or --days, not both (--until ends either)")
    end = parse_moment(until, "--until") if until else (now or datetime.now(UTC))
    if since is not None:
        start = parse_moment(since, "--since")
    else:
        span = DEFAULT_DAYS if days is None else days
        if not 0 < span <= 366:
            raise DriftInputError(f"--days {span:g}: expected more than 0 and at most 366")
        start = end - timedelta(days=span)
    if start >= end:
        raise DriftInputError(f"the period is empty: --since {iso(start)} is not before --until {iso(end)}")
    return Period(start, end)
