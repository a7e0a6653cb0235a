"""`python -m interactive_format.evaluate`, the README's command, kept: the code is training/evaluate.py."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("interactive_format.training.evaluate", run_name="__main__", alter_sys=True)
