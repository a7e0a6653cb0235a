"""Interactive Format: `python app.py [--config FILE] [--llm SPEC] ...` serves the chat app."""

import logging
import sys

from interactive_format.chat import ChatEngine
from interactive_format.config import auth_pair, load_config, parse_args
from interactive_format.errors import InteractiveFormatError
from interactive_format.store import open_store
from interactive_format.ui import build_demo

if __name__ == "__main__":
    try:
        config = load_config(flags=parse_args())
        level = logging.DEBUG if config.server.debug else logging.INFO
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        store = open_store(config.storage)
        engine = ChatEngine.build(config)
    except (InteractiveFormatError, ValueError, OSError) as e:  # bad config or model spec: one line, no traceback
        sys.exit(f"interactive-format: {e}")
    demo = build_demo(engine, store)
    demo.launch(server_name=config.server.host, server_port=config.server.port, auth=auth_pair(config))
