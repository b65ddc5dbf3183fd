"""rarenet lab node: ingest LIMS exports, compute aggregate metrics, sign and send only summaries."""
