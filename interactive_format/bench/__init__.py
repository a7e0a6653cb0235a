"""Speed, side by side in one run (`python -m interactive_format.bench`): the command line (bench), our paths
against the plain ones (llmbench, enginebench, mediabench), whole turns on two chat models (turnbench), and
published model shapes with random weights (archs)."""
