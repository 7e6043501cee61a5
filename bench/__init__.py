"""riskd benchmarks: kernel throughput, server time, and end-to-end runs against an echo baseline.

Run everything with ``make bench`` (``python -m bench.run_all``); results go to bench/results/.
"""
