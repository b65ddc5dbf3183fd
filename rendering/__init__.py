"""Presentation shared by the coordinator and the node: message catalogues (gettext, Babel),
human labels, plots, the individual lab report, PDF printing and safe CSV cells.

Neither node/ nor coordinator/ is imported here; both import this package.
"""
