"""rarenet lab node: ingest LIMS exports, compute aggregate metrics, sign and send only summaries."""

__version__ = "0.1.0"
