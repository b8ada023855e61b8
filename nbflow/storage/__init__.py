"""Where flow code lives between registration and the agent that runs it."""
