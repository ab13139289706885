"""`make bench`: throughput and latency figures, measured side by side in one run.

Never a pass/fail timing assertion (the machines are shared and noisy): it prints
figures and ratios and writes them to docs/benchmarks.md.
"""
