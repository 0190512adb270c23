"""The drift report: captured requests of a period against the model's baseline statistics.

`python -m serving drift` (or `python -m serving.drift`). Its libraries (scipy, plotly, the cloud
storage clients: requirements-drift.txt) are not in the serving image, so they are imported only here.
"""
