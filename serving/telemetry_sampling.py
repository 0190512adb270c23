"""The span attribute the Azure Monitor exporter reads as an item's sampling percentage.

Private to the exporter (`_constants._SAMPLE_RATE_KEY`); its own samplers set it, and it becomes the
envelope's `sampleRate`, from which Application Insights counts sampled requests. The server samples
before creating spans (see telemetry.py), so it sets the attribute itself. A test checks that the
pinned exporter still turns it into `sampleRate`, so an upgrade that renames it fails loudly.
"""

from __future__ import annotations

from azure.monitor.opentelemetry.exporter._constants import _SAMPLE_RATE_KEY

SAMPLE_RATE_ATTRIBUTE: str = _SAMPLE_RATE_KEY
