"""Interactive Format: `python app.py [--config FILE] [--llm SPEC] ...` serves the chat app."""

import logging

from interactive_format.chat import ChatEngine
from interactive_format.config import load_config, parse_args
from interactive_format.ui import build_demo

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(flags=parse_args())
    demo = build_demo(ChatEngine.build(config))
    demo.launch(server_name=config.server.host, server_port=config.server.port)
