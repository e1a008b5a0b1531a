"""TrueBit monitor agent: local task monitoring plus opt-in, anonymized federation."""

__version__ = "0.1.0"
