"""Reports: aggregate a run folder into rate-accuracy tables, BD-rates, curves and HTML."""
