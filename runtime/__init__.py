"""I/O shells shared by the agent and the center: MQTT link, logging, config, supervision."""
