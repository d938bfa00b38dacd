"""Reports after the fact: the snr-report/1 object and files, reading them back, compare, check, correlate, plots."""
