"""AgentSkiller: synthesize executable tool-use environments and verified tasks (see README.md)."""
