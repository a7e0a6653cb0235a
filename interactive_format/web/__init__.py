"""The page and its API (Gradio): the layout (ui), its callbacks (callbacks, talk, exports), the JSON/MCP API
(api), what a turn looks like on the page (rendering), the UI's words in two languages (i18n), and ZeroGPU."""
