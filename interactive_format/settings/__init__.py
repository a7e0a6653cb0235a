"""Where the settings come from: a TOML file, the environment and the flags (load), and flow files (flow_file),
read into the core's config and flows dataclasses. Model specs in a flow are checked here (models.specs)."""
