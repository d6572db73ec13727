"""The whole study in one command: a YAML config, a resumable grid of cached steps, the report."""
