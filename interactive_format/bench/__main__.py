"""`python -m interactive_format.bench`: the benchmark's command line (bench.py)."""

from .bench import main

main()
