"""Pure billing core: money, prices, catalog, quotes. Standard library only, no clock."""
