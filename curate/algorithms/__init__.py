"""Shared math used by selectors and services (bandits, submodular optimisation, transport)."""
