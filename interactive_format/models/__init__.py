"""Model files: the spec registry (specs), the cache files are made in once (cache), GGUF join and requantize
(gguf_file), Hugging Face loading (hub) and the device models run on (device). Imports only errors.py."""
