"""The workflow's glue: the running job, the CLI, the report tables and experiment tracking."""
