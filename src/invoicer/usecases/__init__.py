"""The invoicer's use cases: one function each, storage behind the ports of :mod:`.ports`."""
