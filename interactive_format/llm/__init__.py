"""The chat model G: what every backend speaks (sampling), the backends (transformers, llama.cpp, an
OpenAI-compatible server, a vision-language model), the factory that picks one, and offline passes."""
