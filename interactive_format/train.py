"""`python -m interactive_format.train`, the README's command, kept: the code is training/train.py."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("interactive_format.training.train", run_name="__main__", alter_sys=True)
