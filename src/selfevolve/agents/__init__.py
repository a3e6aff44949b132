"""Agents that evolve: text environments, memories, and the loops that improve them."""
