"""The `rtcc` command: composes the agent and the center; neither imports the other."""
