"""The drift report: captured weeks of requests, the statistics, the page, the stores."""
