"""Interactive Format: `python app.py [--flow FILE] [--config FILE] [--llm SPEC] ...` serves the chat app."""

import logging
import sys
import threading

from interactive_format.errors import InteractiveFormatError, missing_package, require

if __name__ == "__main__":
    try:
        from interactive_format.config import auth_pair
        from interactive_format.llm.backends import check_server
        from interactive_format.models.specs import check_specs
        from interactive_format.settings.load import flow_configs, load_config, parse_args

        flags = parse_args()
        config = load_config(flags=flags)
        if config.server.mcp:
            require("mcp", "--mcp")
        level = logging.DEBUG if config.server.debug else logging.INFO
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        configs = flow_configs(config, flags=flags)
        for checked in (config, *configs.values()):  # a bad spec says so before the models and the UI load
            check_specs(checked.models)
        check_server(config.models)  # and so does the start flow's model server when it does not answer
        from interactive_format.engine.engines import FlowSet, warm_up
        from interactive_format.store.store import open_store
        from interactive_format.web.ui import build_demo

        store = open_store(config.storage)
        flows = FlowSet.starting(config, configs, warm_now=False)  # the start flow's chat model loads now
    except ModuleNotFoundError as e:  # a package the app imports is not installed: name it and the command
        sys.exit(f"interactive-format: {missing_package(e)}")
    except (InteractiveFormatError, ValueError, OSError) as e:  # bad config, flow or model spec: one line
        sys.exit(f"interactive-format: {e}")
    server, engine = config.server, flows.engine(flows.start)
    demo = build_demo(engine, store, flows)
    demo.launch(
        server_name=server.host, server_port=server.port, mcp_server=server.mcp, auth=auth_pair(config),
        prevent_thread_lock=True,
    )  # fmt: skip
    # The page answers now; the warm-up runs and the speech and picture models load behind it (a turn that needs
    # one of them first waits for it).
    threading.Thread(target=warm_up, args=(engine,), name="warm-up", daemon=True).start()
    demo.block_thread()
