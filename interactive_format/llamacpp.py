"""`python -m interactive_format.llamacpp MODEL --port N`, the README's command, kept: the code is llm/llamacpp.py."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("interactive_format.llm.llamacpp", run_name="__main__", alter_sys=True)
