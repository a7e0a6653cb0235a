"""Interactive Format: `python app.py [--config FILE] [--llm SPEC] ...` serves the chat app."""

import logging
import sys

from interactive_format.chat import ChatEngine
from interactive_format.config import load_config, parse_args
from interactive_format.errors import InteractiveFormatError
from interactive_format.store import Store
from interactive_format.ui import build_demo

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(flags=parse_args())
        store = Store(config.storage.db_path)
        engine = ChatEngine.build(config)
    except (InteractiveFormatError, ValueError, OSError) as e:  # bad config or model spec: one line, no traceback
        sys.exit(f"interactive-format: {e}")
    server = config.server
    build_demo(engine, store).launch(server_name=server.host, server_port=server.port, mcp_server=server.mcp)
